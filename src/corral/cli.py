"""The `corral` command: load the settings, prepare the process, hand over to the arbiter."""

from __future__ import annotations

import linecache
import os
import sys
import threading
from types import FrameType
from typing import Any

from corral.arbiter.reload import worker_class
from corral.arbiter.sizing import resolve_workers
from corral.config import Config, load
from corral.errors import ConfigError, CorralError, HaltServer
from corral.gateway.loader import load_app, resolve_interface

PROG = "corral"
NO_APP = "no application given: corral [OPTIONS] APP (or wsgi_app in the config file)"


def main(argv: list[str] | None = None) -> None:
    """Run corral with `argv` (default: sys.argv[1:]); always ends with SystemExit.

    `corral ctl ...` is the control socket's client (`corral.ctl.main`) and `corral top ...` its
    live view, not servers: only an exact first word, so an app named `ctl:app` (or given
    after options) still serves.
    """
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["ctl"]:
        from corral.ctl.main import main as ctl

        sys.exit(ctl(args[1:]))
    if args[:1] == ["top"]:
        from corral.ctl.top import main as top

        sys.exit(top(args[1:]))
    if args[:1] == ["tune"]:  # measure the app and pick workers and threads (docs/tuning.md)
        from corral.tune.main import main as tune

        sys.exit(tune(args[1:]))
    try:
        status = _run(args)
    except HaltServer as exc:
        if exc.reason:
            print(f"{PROG}: {exc.reason}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except CorralError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    sys.exit(status)


def _run(args: list[str]) -> int:
    cfg = load(args, os.environ)
    # HUP and USR2 re-read the configuration from where corral was started, not from --chdir.
    cwd = os.getcwd()
    prepare_process(cfg)
    if cfg.spew:
        install_spew()
    if cfg.print_config or cfg.check_config:
        return _check(cfg)
    if cfg.app_uri is None:
        raise ConfigError(NO_APP)
    # Imported here: the arbiter pulls in the workers, which --check-config does not need.
    from corral.arbiter.arbiter import Arbiter

    return Arbiter(cfg, cwd=cwd).run()


def prepare_process(cfg: Config) -> None:
    """Apply raw_env, chdir and pythonpath, as they must be before the app is imported."""
    for item in cfg.raw_env:
        key, _, value = item.partition("=")
        os.environ[key] = value
    if cfg.chdir:
        os.chdir(cfg.chdir)
    # The working directory goes first on sys.path, as with `python -m`: the `corral` script's
    # own directory would otherwise be there, and `corral app:app` could not find app.py.
    paths = [os.getcwd()]
    if cfg.pythonpath:
        paths = [os.path.abspath(p) for p in cfg.pythonpath.split(",") if p.strip()] + paths
    for path in reversed(paths):
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)


def install_spew() -> None:
    """`spew`: write every line Python executes to stderr, in every thread, from now on."""

    def trace(frame: FrameType, event: str, _arg: object) -> Any:
        # CPython does not trace the trace function itself, and os.write is not Python code,
        # so this cannot recurse.
        if event == "line":
            name, number = frame.f_code.co_filename, frame.f_lineno
            text = linecache.getline(name, number).rstrip()
            os.write(2, f"{os.getpid()} {name}:{number}: {text}\n".encode(errors="replace"))
        return trace

    threading.settrace(trace)
    sys.settrace(trace)


def _check(cfg: Config) -> int:
    """--print-config and --check-config: report, import the app when there is one, exit."""
    if cfg.print_config:
        resolve_workers(cfg, worker_class(cfg))  # show what `workers = auto` comes to here
        print(cfg.dump())
    if cfg.app_uri is None:
        if cfg.check_config:
            raise ConfigError(NO_APP)
        return 0
    loaded = load_app(cfg.app_uri)
    interface = resolve_interface(loaded.app, cfg.interface)
    if cfg.check_config:
        _list_unknown(cfg)
        article = "a" if interface == "wsgi" else "an"
        print(f"{PROG}: configuration OK; {cfg.app_uri} loads as {article} {interface} app")
    return 0


def _list_unknown(cfg: Config) -> None:
    """--check-config: every warning and note, then the names ignored as helpers."""
    for unknown in cfg.unknown:
        text = unknown.message()
        if text is not None:
            print(f"{PROG}: {unknown.level.lower()}: {text}")
    helpers: dict[str, list[str]] = {}
    for unknown in cfg.unknown:
        if unknown.message() is None:
            helpers.setdefault(unknown.source, []).append(unknown.name)
    for source, names in helpers.items():
        print(f"{PROG}: {source}: ignored, not settings: {', '.join(names)}")
