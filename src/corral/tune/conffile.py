"""`DIR/corral.conf.py`: the pick as a config file that `corral -c` runs as it is."""

from __future__ import annotations

import ast
import os
import time

from corral.config import Config, settings_table
from corral.tune.model import Measurement

# Settings the pick sets, or that only make sense for the tuning run itself.
_TUNED = {
    "workers",
    "threads",
    "max_threads",
    "worker_class",
    "bind",
    "config",
    "wsgi_app",
    "check_config",
    "print_config",
    "control_socket",
    "control_socket_disable",
}


def _literal(value: object) -> str | None:
    """`repr(value)` when it reads back as the same value (plain data), else None."""
    text = repr(value)
    try:
        return text if ast.literal_eval(text) == value else None
    except (ValueError, SyntaxError):
        return None


def command_line_settings(cfg: Config) -> list[str]:
    """`name = value` for each setting given on the command line (or its env forms) to tune."""
    lines = []
    for name in sorted(settings_table()):
        source = cfg.source_of(name)
        if name in _TUNED or not source.startswith(("command line", "env CORRAL_CMD_ARGS")):
            continue
        text = _literal(getattr(cfg, name))
        if text is None:
            lines.append(f"# {name}: given as {source}, not plain data; set it again yourself")
        else:
            lines.append(f"{name} = {text}  # from {source}")
    return lines


def render(cfg: Config, pick: Measurement, app: str, report: str) -> str:
    """The config file's text."""
    cell = pick.cell
    config_path = cfg.config
    lines = [
        f'"""corral settings picked by `corral tune` on {time.strftime("%Y-%m-%d %H:%M")}: '
        f"{cell.label()}.",
        "",
        f"Run:  corral -c {os.path.abspath(report.rsplit('/', 1)[0])}/corral.conf.py {app}",
        f"Measured: {pick.rps:,.0f} req/s, p99 {pick.p99_ms:.0f} ms with {pick.connections} "
        f"clients at once on this machine; the reasons are in {report}.",
        '"""',
        "",
    ]
    if config_path and not str(config_path).startswith("python:"):
        path = os.path.abspath(str(config_path).removeprefix("file:"))
        lines += [
            f"# The config file tune ran with applies first: {path}",
            "import runpy as _runpy",
            "",
            "globals().update(",
            f"    {{k: v for k, v in _runpy.run_path({path!r}).items() if not k.startswith('__')}}",
            ")",
            "",
        ]
    elif config_path:
        module = str(config_path).removeprefix("python:")
        lines += [f"from {module} import *  # noqa: F403  (the config module tune ran with)", ""]
    extra = command_line_settings(cfg)
    if extra:
        lines += ["# Given on tune's command line:", *extra, ""]
    lines += [
        "# The pick:",
        f"worker_class = {cell.kind!r}",
        f"workers = {cell.workers}",
        f"threads = {cell.threads}",
    ]
    if cell.kind == "threaded" and cfg.max_threads:
        lines.append("max_threads = 0  # threads is the pool's bound")
    return "\n".join(lines) + "\n"
