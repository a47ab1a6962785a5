"""A workload's servers started together and measured in turns, round by round: what the suite
(benchmarks/suite.py: wrk, s_time, wsload) and the HTTP/2 rows (benchmarks/h2.py: h2load) share."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from benchmarks.proctree import ProcStat, RssSampler, stop_tree, tree_cpu_s
from benchmarks.servers import Server

STOP_TIMEOUT_S = 10.0


W = TypeVar("W")  # the workload
R = TypeVar("R")  # one run's result


@dataclass
class TurnCell(Generic[W, R]):
    """One (workload, server) pair: its runs, or why there are none."""

    workload: W
    server: str
    config: str = ""
    runs: list[R] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)  # the server tree's CPU in each run
    peak_rss_kib: int = 0
    note: str | None = None  # set when the cell did not produce numbers


C = TypeVar("C", bound=TurnCell[Any, Any])
T = TypeVar("T")


@dataclass
class Turns(Generic[C]):
    """A started server of one workload, and where its runs go."""

    cell: C
    proc: subprocess.Popen[bytes]
    port: int
    tmp: Path
    log: Path
    seen: dict[int, ProcStat] = field(default_factory=dict)  # every process the sampler saw
    stopped: bool = False

    def stop(self, note: str | None = None) -> None:
        """Stop the server's whole tree by PID (once); with a note, the cell keeps no runs."""
        if note is not None:
            self.cell.note = note
            self.cell.runs.clear()
            self.cell.cpu_s.clear()
        if not self.stopped:
            stop_tree(self.proc, self.seen.values(), STOP_TIMEOUT_S)
            self.stopped = True

    def confirm(self, wait: Callable[[], None], not_ready: type[Exception]) -> Turns[C] | None:
        """Itself once `wait` (the readiness check) returns; None, the server stopped and the
        cell noted, when it raises `not_ready`. Anything else stops the server and propagates."""
        try:
            wait()
        except not_ready as exc:
            self.stop(f"not available: {exc}")
            return None
        except BaseException:
            self.stop()
            raise
        return self

    def measure(self, run: Callable[[], T]) -> T:
        """One measured run, the RSS sampler watching and the tree's CPU time counted; its
        result joins the cell's runs."""
        cpu_before = tree_cpu_s(self.proc.pid)
        with RssSampler(self.proc.pid) as sampler:
            result = run()
        self.cell.runs.append(result)
        self.cell.cpu_s.append(tree_cpu_s(self.proc.pid) - cpu_before)
        self.cell.peak_rss_kib = max(self.cell.peak_rss_kib, sampler.peak_kib)
        self.seen.update(sampler.seen)
        return result


def take_turns(
    label: str,
    servers: Sequence[Server],
    tmp: Path,
    rounds: int,
    start: Callable[[Server, Path], tuple[C, Turns[C] | None]],
    take_turn: Callable[[Turns[C], bool], None],
    summary: Callable[[C], str],
) -> list[C]:
    """Every server of one workload (`label`), started together by `start` (each in its own
    directory under tmp) and measured in turns by `take_turn` (told whether it is the first),
    each run shown on stderr by `summary` (given a cell with runs and no note).

    Round by round, each server gets one run, so run k of every server falls in the same few
    minutes. On a shared machine, whose speed drifts by a third within an hour, run k of corral
    and run k of gunicorn then see the same machine, and their ratio is fair even when the
    rates are not. The servers not under load sit idle meanwhile. Every started server is
    stopped at the end, however it ends.
    """
    cells: list[C] = []
    started: list[Turns[C]] = []
    try:
        for server in servers:
            cell_dir = tmp / f"{label}-{server.name}"
            cell_dir.mkdir()
            cell, turns = start(server, cell_dir)
            cells.append(cell)
            if turns is not None:
                started.append(turns)
            else:
                progress(f"{label} x {server.name}: {cell.note}")
        for round_no in range(1, rounds + 1):
            # Each round starts one server further on, so no server always follows the same
            # neighbour (and whatever it leaves behind: TIME_WAIT sockets, a busy tail).
            shift = (round_no - 1) % max(len(started), 1)
            for turns in started[shift:] + started[:shift]:
                if turns.stopped:
                    continue
                progress(f"{label} x {turns.cell.server}, run {round_no}/{rounds}")
                take_turn(turns, round_no == 1)
                cell = turns.cell
                shown = summary(cell) if cell.note is None and cell.runs else cell.note
                progress(f"    {shown or 'no runs'}")
    finally:
        stop_all(started)
    return cells


def stop_all(started: Sequence[Turns[Any]]) -> None:
    """Stop every server, even when stopping one fails, then raise the first failure: each
    runs in its own session, so a Ctrl-C at the terminal never reaches it."""
    failure: BaseException | None = None
    for turns in started:
        try:
            turns.stop()
        except BaseException as exc:  # a second Ctrl-C, or a tree that would not die
            failure = failure or exc
    if failure is not None:
        raise failure


def log_tail(log: Path, lines: int = 2, chars: int = 200) -> str:
    """The last lines of a server's log, joined (at most `chars` of them), for a note."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " / ".join(kept)[-chars:]


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
