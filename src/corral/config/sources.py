"""Where settings come from, in order: defaults < config file < environment < command line."""

from __future__ import annotations

import configparser
import difflib
import functools
import importlib
import importlib.util
import os
import shlex
import sys
import traceback
import types
from collections.abc import Mapping, Sequence

from corral.config.flags import Given, parse_flags
from corral.config.model import DEFAULT_SOURCE, Config, settings_table
from corral.config.spec import ENV_PREFIX
from corral.config.unknown import Unknown, classify
from corral.ctl.protocol import default_socket_path
from corral.errors import ConfigError
from corral.gateway.loader import PASTE_MISSING

DEFAULT_CONFIG_FILES = ("corral.conf.py", "gunicorn.conf.py")
# Extra command-line arguments held in the environment, lowest precedence first.
CMD_ARGS_VARS = ("GUNICORN_CMD_ARGS", "CORRAL_CMD_ARGS")


def load(argv: Sequence[str], environ: Mapping[str, str]) -> Config:
    """Build the Config from every source; `argv` excludes the program name.

    Raises ConfigError with one line naming the setting, the value and its source.
    """
    cfg = Config()
    # gunicorn's default control socket depends on the environment ($XDG_RUNTIME_DIR, $HOME).
    cfg.set("control_socket", default_socket_path(environ), DEFAULT_SOURCE)
    command_line = parse_flags(argv, "command line")
    env_command_lines = [
        (var, parse_flags(_split(environ[var], var), f"env {var}"))
        for var in CMD_ARGS_VARS
        if environ.get(var, "").strip()
    ]
    _apply_legacy_env(cfg, environ)
    location = _config_location(command_line, env_command_lines, environ)
    if location is not None:
        cfg.set("config", location[0], location[1])
        _apply_config_file(cfg, location[0])
    _apply_env(cfg, environ)
    for var, given in env_command_lines:
        _apply_flags(cfg, given, f"env {var}")
    _apply_flags(cfg, command_line, "command line")
    if cfg.interface == "asgi" and cfg.source_of("worker_class") == "default":
        # An app said to be ASGI (uvicorn's --interface asgi3) needs the asyncio worker.
        cfg.set("worker_class", "asyncio", "default (interface = asgi)")
    if cfg.paste:
        _apply_paste(cfg)
    elif cfg.app_uri and cfg.source_of("default_proc_name") == "default":
        # As gunicorn does: process titles name the application.
        cfg.set("default_proc_name", cfg.app_uri, "default (the APP)")
    cfg.check()
    return cfg


def _apply_paste(cfg: Config) -> None:
    """`paste`: an absolute path that exists, and gunicorn's defaults taken from the file."""
    source = cfg.source_of("paste")
    path, sep, name = str(cfg.paste).partition("#")
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"paste = {cfg.paste!r} (from {source}): {path} not found")
    try:
        found = importlib.util.find_spec("paste.deploy") is not None
    except ImportError:
        found = False
    if not found:
        raise ConfigError(f"paste = {cfg.paste!r} (from {source}): {PASTE_MISSING}")
    cfg.set("paste", path + sep + name, source)
    if cfg.source_of("default_proc_name") == "default":
        cfg.set("default_proc_name", path, "default (the paste file)")
    if cfg.source_of("logconfig") == "default" and _has_loggers(path):
        cfg.set("logconfig", path, "default (the paste file's [loggers])")


def _has_loggers(path: str) -> bool:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read([path])
    except configparser.Error:
        return False  # PasteDeploy reports a broken file when it loads the app
    return parser.has_section("loggers")


def _split(text: str, var: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise ConfigError(f"env {var}: cannot split {text!r}: {exc}") from None


def _apply_flags(cfg: Config, given: Mapping[str, Given], where: str) -> None:
    for name, (value, flag) in given.items():
        cfg.set(name, value, f"{where} {flag}")


def _apply_legacy_env(cfg: Config, environ: Mapping[str, str]) -> None:
    # gunicorn takes PORT, WEB_CONCURRENCY, FORWARDED_ALLOW_IPS and SENDFILE as defaults: below
    # the config file, unlike CORRAL_<NAME>.
    for name, row in settings_table().items():
        var = row.spec.legacy_env
        if var and environ.get(var, "").strip():
            text = row.spec.legacy_env_format.format(environ[var].strip())
            cfg.set(name, text, f"env {var}", from_text=True)


def _apply_env(cfg: Config, environ: Mapping[str, str]) -> None:
    known = {row.env: name for name, row in settings_table().items()}
    for var, text in environ.items():
        if var in known:
            cfg.set(known[var], text, f"env {var}", from_text=True)
        elif var.startswith(ENV_PREFIX) and var not in CMD_ARGS_VARS:
            # Other CORRAL_* variables may belong to someone else; only a near miss of a
            # setting's variable is taken for a typo.
            close = difflib.get_close_matches(var, list(known), n=1, cutoff=0.8)
            if close:
                cfg.note_unknown(Unknown(var, "environment", "env", close[0]))


def _config_location(
    command_line: Mapping[str, Given],
    env_command_lines: Sequence[tuple[str, Mapping[str, Given]]],
    environ: Mapping[str, str],
) -> tuple[str, str] | None:
    if "config" in command_line:
        return str(command_line["config"].value), f"command line {command_line['config'].flag}"
    for var, given in reversed(env_command_lines):
        if "config" in given:
            return str(given["config"].value), f"env {var} {given['config'].flag}"
    if environ.get("CORRAL_CONFIG", "").strip():
        return environ["CORRAL_CONFIG"].strip(), "env CORRAL_CONFIG"
    for name in DEFAULT_CONFIG_FILES:
        if os.path.isfile(name):
            return os.path.abspath(name), "default"
    return None


def _apply_config_file(cfg: Config, location: str) -> None:
    if location.startswith("python:"):
        module_name = location.removeprefix("python:")
        source = f"config module {module_name}"
        namespace = _import_config_module(module_name)
    else:
        path = os.path.abspath(location.removeprefix("file:"))
        source = f"config file {path}"
        namespace = _run_config_file(path)
    for name, value in namespace.items():
        if name == "config":
            # The file is already chosen; gunicorn ignores it too.
            cfg.note_unknown(
                Unknown(name, source, "noeffect", "has no effect in a config file, ignored")
            )
        elif name in settings_table():
            cfg.set(name, value, source)
        else:
            unknown = classify(name, value, source, _long_flags(), _hook_names())
            if unknown is not None:
                cfg.note_unknown(unknown)


@functools.cache
def _long_flags() -> dict[str, tuple[str, ...]]:
    return {name: row.spec.cli for name, row in settings_table().items()}


@functools.cache
def _hook_names() -> tuple[str, ...]:
    return tuple(
        name
        for name, row in settings_table().items()
        if row.spec.parse.type_name.startswith("callable")
    )


def _import_config_module(module_name: str) -> dict[str, object]:
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(
            f"config module {module_name}: cannot import: {type(exc).__name__}: {exc}"
        ) from None
    return dict(vars(module))


def _run_config_file(path: str) -> dict[str, object]:
    try:
        with open(path, "rb") as handle:
            code = compile(handle.read(), path, "exec")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read: {exc.strerror}") from None
    except SyntaxError as exc:
        raise ConfigError(
            f"config file {path}, line {exc.lineno}: SyntaxError: {exc.msg}"
        ) from None
    # Run as module "__config__", as gunicorn does, so functions defined in the file have a
    # module that pickle and logging can name.
    module = types.ModuleType("__config__")
    module.__file__ = path
    sys.modules["__config__"] = module
    try:
        exec(code, module.__dict__)
    except Exception as exc:
        lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == path]
        where = f", line {lines[-1]}" if lines else ""
        raise ConfigError(f"config file {path}{where}: {type(exc).__name__}: {exc}") from None
    return dict(vars(module))
