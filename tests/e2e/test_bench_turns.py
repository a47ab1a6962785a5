"""The benchmark harness end to end: a workload's servers take turns, and all of them stop."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import proctree, servers, suite, workloads, wrkrun  # noqa: E402


def _alive(stat: proctree.ProcStat) -> bool:
    """Whether that process (not a later one with its PID) still runs; a zombie does not."""
    try:
        text = Path(f"/proc/{stat.pid}/stat").read_text()
    except OSError:
        return False
    state = text.rpartition(")")[2].split()[0]
    return proctree.parse_stat(text).start_time == stat.start_time and state != "Z"


def _watched(monkeypatch: pytest.MonkeyPatch, turn: Any) -> list[proctree.ProcStat]:
    """Run `turn(call_number)` in place of each load run; what the servers' trees held then."""
    masters: list[int] = []
    seen: list[proctree.ProcStat] = []
    real_start = suite.start_server

    def start(*args: Any) -> Any:
        proc = real_start(*args)
        masters.append(proc.pid)
        return proc

    def one_run(*args: Any) -> Any:
        for pid in masters:
            seen.extend(proctree.process_tree(pid))
        return turn(len(seen))

    monkeypatch.setattr(suite, "start_server", start)
    monkeypatch.setattr(suite, "_one_run", one_run)
    return seen


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk")
def test_servers_of_a_workload_run_in_turns_and_are_all_stopped() -> None:
    argv = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--workloads", "hello"]
    argv += ["--servers", "corral-sync,corral-threaded", "--runs", "2", "--duration", "1"]
    argv += ["--warmup", "0"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    turns = re.findall(r"^hello x (\S+), run (\d)/2$", done.stderr, re.MULTILINE)
    # Round by round, not server by server; the second round starts with the other server.
    assert turns == [
        ("corral-sync", "1"),
        ("corral-threaded", "1"),
        ("corral-threaded", "2"),
        ("corral-sync", "2"),
    ]
    table, _, rounds = done.stdout.partition("## Round by round")
    rows = [line for line in table.splitlines() if line.startswith("| hello |")]
    assert [row.split("|")[2].strip() for row in rows] == ["corral-sync", "corral-threaded"]
    assert "take turns" in done.stdout
    # Behind each median, its two rounds.
    each = [line.split("|")[3] for line in rounds.splitlines() if line.startswith("| hello |")]
    assert len(each) == 2 and all(len(cell.split(" / ")) == 2 for cell in each)


def _hello_run(tmp_path: Path) -> list[suite.Cell]:
    chosen = servers.select_servers(["corral-sync", "corral-threaded"])
    hello = workloads.select_workloads(["hello"])[0]
    opts = suite.Options([hello], chosen, duration_s=1, warmup_s=0, runs=2)
    return suite.run_workload(hello, chosen, opts, tmp_path)


def test_every_server_is_stopped_after_its_rounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _watched(monkeypatch, lambda _: wrkrun.WrkResult(1000, 1000.0, 1.0, 2.0, 0.1))
    cells = _hello_run(tmp_path)
    assert [len(c.runs) for c in cells] == [2, 2]
    assert len({s.pid for s in seen}) >= 6  # two masters, each with two workers
    assert not [s.pid for s in seen if _alive(s)]


def test_an_interrupted_run_stops_every_server_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(_: int) -> None:
        raise KeyboardInterrupt  # Ctrl-C during the first load run, both servers up

    seen = _watched(monkeypatch, interrupt)
    with pytest.raises(KeyboardInterrupt):
        _hello_run(tmp_path)
    assert len({s.pid for s in seen}) >= 6
    assert not [s.pid for s in seen if _alive(s)]
