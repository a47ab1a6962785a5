"""Where settings come from, in order: defaults < config file < environment < command line."""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import shlex
import sys
import traceback
import types
from collections.abc import Mapping, Sequence

from corral.config.flags import Given, parse_flags
from corral.config.model import Config, did_you_mean, settings_table
from corral.config.spec import ENV_PREFIX
from corral.errors import ConfigError

DEFAULT_CONFIG_FILES = ("corral.conf.py", "gunicorn.conf.py")
# Extra command-line arguments held in the environment, lowest precedence first.
CMD_ARGS_VARS = ("GUNICORN_CMD_ARGS", "CORRAL_CMD_ARGS")
# Unknown names holding these types in a config file are taken for misspelt settings.
_PLAIN_DATA = (type(None), bool, int, float, str, bytes, list, tuple, dict, set, frozenset)


def load(argv: Sequence[str], environ: Mapping[str, str]) -> Config:
    """Build the Config from every source; `argv` excludes the program name.

    Raises ConfigError with one line naming the setting, the value and its source.
    """
    cfg = Config()
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
    if cfg.app_uri and cfg.source_of("default_proc_name") == "default":
        # As gunicorn does: process titles name the application.
        cfg.set("default_proc_name", cfg.app_uri, "default (the APP)")
    cfg.check()
    return cfg


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
                raise ConfigError(f"unknown environment variable {var} (did you mean {close[0]}?)")


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
        if _is_helper(name, value, source):
            continue
        if name == "config":
            raise ConfigError(f"{source}: 'config' cannot be set from a config file")
        cfg.set(name, value, source)


def _is_helper(name: str, value: object, source: str) -> bool:
    """Whether a config file name is not meant as a setting (raises for likely typos)."""
    if name in settings_table():
        return False
    if name.startswith("_") or (name.isupper() and name != name.lower()):
        return True  # private names and ALL_CAPS constants
    if isinstance(value, types.ModuleType) or inspect.isclass(value):
        return True
    if callable(value):
        hooks = [n for n, row in settings_table().items() if row.spec.section == "Server Hooks"]
        close = difflib.get_close_matches(name, hooks, n=1, cutoff=0.85)
        if close:
            raise ConfigError(
                f"{source}: {name!r} is not a server hook (did you mean {close[0]!r}?)"
            )
        return True
    if not isinstance(value, _PLAIN_DATA):
        return True  # an object made or imported for use in the file, such as a logger
    hint = did_you_mean(name, settings_table(), "{!r}")
    raise ConfigError(
        f"{source}: unknown setting {name!r}{hint}; name helper variables with a leading '_'"
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
