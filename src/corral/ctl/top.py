"""`corral top`: a live view of the workers, their threads and requests, over the control socket."""

from __future__ import annotations

import argparse
import contextlib
import curses
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from corral.ctl.client import ControlClient, ControlError
from corral.ctl.protocol import default_socket_path

DEFAULT_INTERVAL = 1.0


def _ms(value: object) -> str:
    return f"{float(value) * 1000:.1f}" if isinstance(value, (int, float)) else "-"


def _share(value: object) -> str:
    return f"{float(value) * 100:.0f}%" if isinstance(value, (int, float)) else "-"


def _mib(value: object) -> str:
    return f"{float(value) / (1 << 20):.0f}" if isinstance(value, (int, float)) else "-"


def summary(workers: Sequence[dict[str, Any]]) -> str:
    """The first line: the whole server's load."""
    rate = sum(float(w.get("req_per_s") or 0.0) for w in workers)
    inflight = sum(int(w.get("in_flight") or 0) for w in workers)
    capacity = sum(int(w.get("capacity") or 0) for w in workers)
    busy = {
        window: sum(float(w.get("utilisation", {}).get(window, 0.0)) * int(w.get("capacity") or 0)
                    for w in workers) / capacity if capacity else 0.0
        for window in ("1s", "10s", "60s")
    }  # fmt: skip
    load = " ".join(f"{window} {_share(share)}" for window, share in busy.items())
    return (
        f"workers {len(workers)}  req/s {rate:.0f}  in flight {inflight}/{capacity}  "
        f"utilisation {load}"
    )


HEADER = (
    f"{'PID':>8} {'STATE':<9} {'KIND':<8} {'RSS MiB':>7} {'REQS':>8} {'REQ/S':>7} "
    f"{'P50 ms':>7} {'P99 ms':>7} {'QUEUE ms':>8} {'UTIL 10s':>8} {'BUSY':>7}"
)


def worker_line(w: dict[str, Any]) -> str:
    """One worker's row."""
    threads = w.get("threads") or []
    busy = sum(1 for t in threads if t.get("state") == "busy")
    return (
        f"{w.get('pid', '?'):>8} {w.get('state', '')!s:<9} {w.get('kind', '')!s:<8} "
        f"{_mib(w.get('rss')):>7} {w.get('requests') or 0:>8} "
        f"{float(w.get('req_per_s') or 0.0):>7.0f} {_ms(w.get('p50')):>7} {_ms(w.get('p99')):>7} "
        f"{_ms(w.get('queue_mean')):>8} {_share(w.get('utilisation', {}).get('10s')):>8} "
        f"{busy:>3}/{w.get('capacity') or 0}"
    )


def request_lines(w: dict[str, Any]) -> list[str]:
    """The worker's running requests, oldest first."""
    running = [t for t in w.get("threads") or [] if t.get("state") == "busy"]
    running.sort(key=lambda t: -float(t.get("age") or 0.0))
    return [
        f"{'':>10}{float(t.get('age') or 0.0):>8.2f}s  {t.get('method', '')} {t.get('path', '')}"
        for t in running
    ]


def render(workers: Sequence[dict[str, Any]], when: str = "") -> list[str]:
    """The whole screen as lines (the same text for the terminal and for --once)."""
    lines = [f"corral top  {when}".rstrip(), summary(workers), "", HEADER]
    for w in workers:
        lines.append(worker_line(w))
        lines.extend(request_lines(w))
    return lines


def fetch(client: ControlClient) -> list[dict[str, Any]]:
    """The live workers, as `show workers` gives them."""
    reply = client.send_command("show workers")
    workers = reply.get("workers") if isinstance(reply, dict) else None
    return list(workers) if isinstance(workers, list) else []


def _draw(screen: Any, lines: list[str]) -> None:
    screen.erase()
    height, width = screen.getmaxyx()
    for row, line in enumerate(lines[: max(height - 1, 0)]):
        with contextlib.suppress(curses.error):  # the last cell of the screen
            screen.addnstr(row, 0, line, max(width - 1, 0))
    with contextlib.suppress(curses.error):
        screen.addnstr(height - 1, 0, "q: quit", max(width - 1, 0), curses.A_REVERSE)
    screen.refresh()


def _loop(screen: Any, client: ControlClient, interval: float) -> None:
    curses.curs_set(0)
    screen.timeout(int(interval * 1000))
    while True:
        try:
            lines = render(fetch(client), time.strftime("%H:%M:%S"))
        except ControlError as exc:
            lines = [f"corral top: {exc}"]
        _draw(screen, lines)
        key = screen.getch()  # waits up to the interval
        if key in (ord("q"), ord("Q"), 27):
            return


def main(argv: Sequence[str] | None = None) -> int:
    """`corral top [-s PATH] [-i SECONDS] [--once]`; returns the exit status."""
    parser = argparse.ArgumentParser(prog="corral top", description=__doc__)
    parser.add_argument(
        "-s", "--socket", default="", help="the control socket (default: as corral ctl's)"
    )
    parser.add_argument("-i", "--interval", type=float, default=DEFAULT_INTERVAL)
    parser.add_argument("--once", action="store_true", help="print one screen and exit")
    args = parser.parse_args(argv)
    try:
        with ControlClient(os.path.abspath(args.socket or default_socket_path())) as client:
            if args.once or not sys.stdout.isatty():
                print("\n".join(render(fetch(client), time.strftime("%H:%M:%S"))))
                return 0
            curses.wrapper(_loop, client, max(args.interval, 0.1))
    except ControlError as exc:
        print(f"corral top: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0
