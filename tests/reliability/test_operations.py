"""Every operation row under load, on corral's three workers: no request lost, no fd leaked.

The rows, their clients and their load are those of `benchmarks/reliability.py` (see
docs/reliability.md); each test runs one row on one worker through the same code.
"""

from __future__ import annotations

import pytest
from benchmarks.reliability_nginx import nginx_binary
from benchmarks.reliability_rows import ROW_NAMES, row_named
from benchmarks.reliability_run import EMFILE_LOG, RowResult, run_row
from benchmarks.reliability_servers import CORRAL_NAMES, spec_named

RATE = 200.0
# A worker out of fds logs that once per interval, not once per accept() it retries: a few
# lines in a row of a few seconds, where a worker spinning on accept() writes tens of thousands.
EMFILE_LOG_LINES_MAX = 20
# Workers that hold many connections at once, and so run out of fds in the emfile row; the sync
# worker holds one connection at a time and never reaches its limit there.
MANY_CONNECTIONS = ("corral-threaded", "corral-asyncio")


def _report(result: RowResult) -> str:
    lines = [f"{result.server} x {result.row}:", *result.problems()]
    lines += [f"failure: {example}" for example in result.tally.examples]
    lines += result.notes
    return "\n".join(lines) + "\n--- server log (tail) ---\n" + result.log


@pytest.mark.timeout(240)
@pytest.mark.parametrize("row", ROW_NAMES)
@pytest.mark.parametrize("server", CORRAL_NAMES)
def test_row_loses_no_request(server: str, row: str) -> None:
    result = run_row(spec_named(server), row_named(row), RATE)
    assert not result.na, result.na
    assert result.tally.sent > 0, _report(result)
    assert not result.problems(), _report(result)
    assert result.tally.ok + result.tally.kinds["designed"] == result.tally.sent, _report(result)
    if row == "emfile":
        _check_emfile(server, result)
    if "nginx" in row_named(row).clients and nginx_binary() is None:
        pytest.skip("direct clients passed; the nginx part was not run: nginx is not installed")


def _check_emfile(server: str, result: RowResult) -> None:
    assert result.notes, "no worker had its fd limit lowered"
    if server in MANY_CONNECTIONS:
        assert result.emfile_lines > 0, (
            f"no log line matching {EMFILE_LOG!r}: the row never ran the worker out of fds\n"
            + _report(result)
        )
    assert result.emfile_lines <= EMFILE_LOG_LINES_MAX, (
        f"{result.emfile_lines} EMFILE log lines: the worker retries accept() without pausing\n"
        + _report(result)
    )
