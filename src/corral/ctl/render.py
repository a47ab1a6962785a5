"""Text for a reply, as gunicornc prints it; corral's extra fields come after gunicorn's columns."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

Data = Mapping[str, Any]


def _heartbeat(row: Data) -> str:
    beat = row.get("last_heartbeat")
    return f"{beat}s ago" if beat is not None else "n/a"


def _worker_line(row: Data, indent: str = "") -> str:
    booted = "yes" if row.get("booted") else "no"
    line = f"{indent}{row.get('pid', '?')!s:<10} {row.get('age', '?')!s:<6} {booted:<8} "
    if "state" not in row:  # a gunicorn server: gunicornc's four columns
        return line + _heartbeat(row)
    requests = row.get("requests")
    served = "n/a" if requests is None else str(requests)
    line += f"{_heartbeat(row):<10} {row.get('state', '?')!s:<9} {served:<9}"
    threads = row.get("threads")
    if isinstance(threads, list):
        busy = sum(1 for t in threads if t.get("state") == "busy")
        line += f" {busy}/{row.get('capacity', len(threads))}"
    return line.rstrip()


def _running_lines(row: Data, indent: str = "") -> list[str]:
    """A worker's running requests, oldest first: how long each has run, method and path."""
    running = [t for t in row.get("threads") or [] if t.get("state") == "busy"]
    running.sort(key=lambda t: -float(t.get("age") or 0.0))
    return [
        f"{indent}    busy {float(t.get('age') or 0.0):8.3f}s  {t.get('method', '')} "
        f"{t.get('path', '')}"
        for t in running
    ]


def _worker_header(rows: list[Data], indent: str = "") -> list[str]:
    if rows and "state" in rows[0]:
        head = (
            f"{'PID':<10} {'AGE':<6} {'BOOTED':<8} {'LAST_BEAT':<10} {'STATE':<9} "
            f"{'REQUESTS':<9} BUSY"
        )
        return [indent + head, indent + "-" * len(head)]
    return [f"{indent}{'PID':<10} {'AGE':<6} {'BOOTED':<8} LAST_BEAT", indent + "-" * 40]


def format_workers(data: Data) -> str:
    workers = list(data.get("workers", []))
    if not workers:
        return "No workers running"
    lines = _worker_header(workers)
    for row in workers:
        lines.append(_worker_line(row))
        lines += _running_lines(row)
    lines += ["", f"Total: {data.get('count', len(workers))} workers"]
    return "\n".join(lines)


def format_dirty(data: Data) -> str:
    if not data.get("enabled"):
        return "Dirty arbiter not running"
    # Only a gunicorn server has dirty workers; show what it said.
    return json.dumps(dict(data), indent=2)


def _uptime(seconds: object) -> str:
    if not isinstance(seconds, (int, float)) or not seconds:
        return "unknown"
    hours, minutes, secs = int(seconds // 3600), int(seconds % 3600 // 60), int(seconds % 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def format_stats(data: Data) -> str:
    lines = [
        f"Uptime:           {_uptime(data.get('uptime'))}",
        f"PID:              {data.get('pid', 'unknown')}",
        f"Workers current:  {data.get('workers_current', 0)}",
        f"Workers target:   {data.get('workers_target', 0)}",
        f"Workers spawned:  {data.get('workers_spawned', 0)}",
        f"Workers killed:   {data.get('workers_killed', 0)}",
        f"Reloads:          {data.get('reloads', 0)}",
    ]
    if data.get("dirty_arbiter_pid"):
        lines.append(f"Dirty arbiter:    {data['dirty_arbiter_pid']}")
    return "\n".join(lines)


def format_listeners(data: Data) -> str:
    listeners = list(data.get("listeners", []))
    if not listeners:
        return "No listeners bound"
    lines = [f"{'ADDRESS':<40} {'TYPE':<8} FD", "-" * 55]
    for row in listeners:
        address, kind = row.get("address", "?"), row.get("type", "?")
        lines.append(f"{address!s:<40} {kind!s:<8} {row.get('fd', '?')}")
    lines += ["", f"Total: {data.get('count', len(listeners))} listeners"]
    return "\n".join(lines)


def format_config(data: Data) -> str:
    lines = []
    for key in sorted(data):
        value = data[key]
        if isinstance(value, list):
            value = ", ".join(str(item) for item in value)
        lines.append(f"{key}: {value}")
    return "\n".join(lines)


def format_help(data: Data) -> str:
    commands: Data = data.get("commands", {})
    width = max((len(name) for name in commands), default=0)
    lines = ["Available commands:", ""]
    lines += [f"  {name:<{width + 2}} {text}" for name, text in sorted(commands.items())]
    return "\n".join(lines)


def format_all(data: Data) -> str:
    arbiter: Data = data.get("arbiter") or {}
    workers = list(data.get("web_workers", []))
    lines = ["ARBITER (master)", f"  PID: {arbiter.get('pid', '?')}", ""]
    lines.append(f"WEB WORKERS ({data.get('web_worker_count', 0)})")
    if workers:
        lines += _worker_header(workers, "  ")
        lines += [_worker_line(row, "  ") for row in workers]
    else:
        lines.append("  (none)")
    lines.append("")
    dirty: Data | None = data.get("dirty_arbiter")
    lines.append("DIRTY ARBITER")
    lines.append(f"  PID: {dirty.get('pid', '?')}" if dirty else "  (not running)")
    return "\n".join(lines)


def format_dump(data: Data) -> str:
    """Each worker's stacks under a line naming it; a worker that did not answer says so."""
    workers = list(data.get("workers", []))
    if not workers:
        return "No workers running"
    blocks = []
    for row in workers:
        head = f"=== worker {row.get('pid', '?')} (age {row.get('age', '?')}) ==="
        text = row.get("text")
        body = str(text).rstrip("\n") if text is not None else f"({row.get('error', 'no answer')})"
        blocks.append(f"{head}\n{body}")
    return "\n\n".join(blocks)


FORMATTERS: dict[str, Callable[[Data], str]] = {
    "show all": format_all,
    "show workers": format_workers,
    "show dirty": format_dirty,
    "show stats": format_stats,
    "show listeners": format_listeners,
    "show config": format_config,
    "help": format_help,
    "dump": format_dump,
}


def format_response(command: str, data: Data) -> str:
    """The text for `command`'s reply: a table where gunicornc has one, else indented JSON."""
    formatter = FORMATTERS.get(" ".join(command.lower().split()))
    if formatter is not None:
        return formatter(data)
    return json.dumps(dict(data), indent=2) if data else "OK"
