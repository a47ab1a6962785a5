"""Pure helpers of the benchmark harness: wrk report parsing, /proc parsing, tables, options."""

from __future__ import annotations

import dataclasses
import errno
import io
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest

# `pytest` without `python -m` leaves the repository root off sys.path; benchmarks/ lives there.
_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from benchmarks import machine, proctree, run, servers, tables, workloads, wrkrun  # noqa: E402
from benchmarks.apps import wsgi_apps  # noqa: E402
from benchmarks.suite import Cell  # noqa: E402

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

CLEAN_REPORT = """\
Running 1s test @ http://127.0.0.1:18081/
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    69.34us  103.91us   3.60ms   98.65%
    Req/Sec    49.14k     5.43k   60.94k    72.73%
  Latency Distribution
     50%   60.00us
     75%   69.00us
     90%   77.00us
     99%  308.00us
  107418 requests in 1.10s, 17.21MB read
Requests/sec:  97649.71
Transfer/sec:     15.65MB
"""

ERROR_REPORT = """\
Running 10s test @ http://127.0.0.1:8000/
  2 threads and 256 connections
  Latency Distribution
     50%    1.25s
     75%    1.30s
     90%    1.50s
     99%    1.99s
  2001 requests in 10.02s, 1.02GB read
  Socket errors: connect 3, read 12, write 1, timeout 40
  Non-2xx or 3xx responses: 7
Requests/sec:    199.70
Transfer/sec:    104.50MB
"""


def test_clean_report_has_numbers_and_no_errors() -> None:
    result = wrkrun.parse_wrk_output(CLEAN_REPORT)
    assert result.requests == 107418
    assert result.requests_per_s == pytest.approx(97649.71)
    assert result.p50_ms == pytest.approx(0.060)
    assert result.p99_ms == pytest.approx(0.308)
    assert result.transfer_mib_s == pytest.approx(15.65)
    errors = (result.connect_errors, result.read_errors, result.write_errors, result.timeouts)
    assert errors == (0, 0, 0, 0)
    assert result.non_2xx == 0


def test_error_lines_are_parsed() -> None:
    result = wrkrun.parse_wrk_output(ERROR_REPORT)
    errors = (result.connect_errors, result.read_errors, result.write_errors, result.timeouts)
    assert errors == (3, 12, 1, 40)
    assert result.non_2xx == 7
    assert result.p50_ms == pytest.approx(1250.0)
    assert result.p99_ms == pytest.approx(1990.0)


def test_report_without_requests_per_second_is_an_error() -> None:
    with pytest.raises(wrkrun.WrkError, match="Requests/sec"):
        wrkrun.parse_wrk_output(CLEAN_REPORT.replace("Requests/sec", "Reqs"))


@pytest.mark.parametrize(
    ("text", "ms"),
    [("456.00us", 0.456), ("1.23ms", 1.23), ("1.02s", 1020.0), ("2.00m", 120_000.0)],
)
def test_time_units(text: str, ms: float) -> None:
    assert wrkrun.parse_time_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize(
    ("text", "mib"),
    [("512.00B", 512 / 1024**2), ("1.50KB", 1.5 / 1024), ("12.30MB", 12.3), ("1.02GB", 1044.48)],
)
def test_size_units_are_binary(text: str, mib: float) -> None:
    assert wrkrun.parse_size_mib(text) == pytest.approx(mib)


def test_unknown_unit_is_an_error() -> None:
    with pytest.raises(wrkrun.WrkError):
        wrkrun.parse_time_ms("3.00d")


def test_wrk_argv_carries_connections_duration_and_script() -> None:
    argv = wrkrun.wrk_argv("http://127.0.0.1:1/", 64, 5, Path("x.lua"))
    assert argv[:5] == ["wrk", "--latency", "-t2", "-c64", "-d5s"]
    assert argv[-3:] == ["-s", "x.lua", "http://127.0.0.1:1/"]
    assert "-s" not in wrkrun.wrk_argv("http://127.0.0.1:1/", 64, 5, None)


def test_stat_with_spaces_and_parentheses_in_comm() -> None:
    fields = " ".join(["S", "4242"] + [str(n) for n in range(5, 22)] + ["987654", "0", "0"])
    stat = proctree.parse_stat(f"1234 (gunicorn: worker (x) ) {fields}")
    assert (stat.pid, stat.ppid, stat.start_time) == (1234, 4242, 987654)


def test_vmrss_from_status() -> None:
    assert proctree.parse_vmrss_kib("Name:\tpython\nVmPeak:\t 9 kB\nVmRSS:\t   22528 kB\n") == 22528
    assert proctree.parse_vmrss_kib("Name:\tzombie\nState:\tZ\n") == 0


def test_descendants_follow_ppid_chains_only_below_root() -> None:
    parents = {1: 0, 10: 1, 11: 10, 12: 10, 13: 11, 20: 1, 21: 20}
    assert sorted(proctree.descendants(10, parents)) == [10, 11, 12, 13]
    assert proctree.descendants(13, parents) == [13]


def test_cpu_model_takes_first_model_name() -> None:
    text = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\n\nprocessor\t: 1\nmodel name\t: other\n"
    assert machine.cpu_model(text) == "AMD EPYC 7B13"
    assert machine.cpu_model("processor\t: 0\n") == "unknown"


def test_unknown_names_are_rejected_with_the_choices() -> None:
    with pytest.raises(ValueError, match="hello-close"):
        workloads.select_workloads(["hello", "nope"])
    with pytest.raises(ValueError, match="gunicorn-gthread"):
        servers.select_servers(["unicorn"])
    chosen = servers.select_servers(["nginx", "gunicorn-sync"])
    assert [s.name for s in chosen] == ["gunicorn-sync", "nginx"]


def test_nginx_serves_only_hello_and_its_conf_stays_in_tmp() -> None:
    nginx = servers.select_servers(["nginx"])[0]
    assert [w.name for w in workloads.WORKLOADS if nginx.serves(w)] == ["hello"]
    conf = servers.nginx_conf("8080", Path("/tmp/x"))
    assert "daemon off;" in conf
    assert "listen 127.0.0.1:8080;" in conf
    assert 'return 200 "Hello, World!";' in conf
    paths = [line.split()[1] for line in conf.splitlines() if "_path " in line or "pid " in line]
    assert paths
    assert all(p.startswith("/tmp/x/") for p in paths)


def test_gthread_gets_32_threads_only_for_io() -> None:
    gthread = servers.select_servers(["gunicorn-gthread"])[0]
    by_name = {w.name: w for w in workloads.WORKLOADS}
    io_argv = gthread.build("1", by_name["io"], Path("/tmp")).argv
    hello_argv = gthread.build("1", by_name["hello"], Path("/tmp")).argv
    assert io_argv[io_argv.index("--threads") + 1] == "32"
    assert hello_argv[hello_argv.index("--threads") + 1] == "8"


def _cell(server: str, rps: float) -> Cell:
    result = wrkrun.WrkResult(100, rps, 1.0, 2.0, 0.5)
    return Cell(workloads.WORKLOADS[0], server, "cfg", [result, result, result])


def test_ratios_are_against_the_same_runs_gunicorn_rows() -> None:
    cells = [_cell("gunicorn-sync", 1000.0), _cell("gunicorn-gthread", 2000.0), _cell("x", 4000.0)]
    row = tables.result_row(cells[2], tables.baselines(cells, "hello"))
    assert row[3:7] == ["4,000", "-", "4.00x", "2.00x"]  # no granian row: a dash
    assert tables.ratio(cells[2], None) == "-"


def _runs(server: str, rates: list[float]) -> Cell:
    runs = [wrkrun.WrkResult(100, rps, 1.0, 2.0, 0.5) for rps in rates]
    return Cell(workloads.WORKLOADS[0], server, "cfg", runs)


def test_ratio_is_the_median_of_the_rounds_ratios() -> None:
    # The machine slowed down in round 3 for both: the paired ratios are 2, 2 and 1 (median 2),
    # where the ratio of the medians would be 30 / 20.
    cell, base = _runs("x", [10.0, 40.0, 30.0]), _runs("gunicorn-sync", [5.0, 20.0, 30.0])
    assert tables.ratio(cell, base) == "2.00x"
    assert tables.ratio(cell, _runs("gunicorn-sync", [])) == "-"
    assert tables.ratio(cell, _runs("gunicorn-sync", [5.0, 0.0, 30.0])) == "-"


def test_rounds_table_shows_every_round_behind_the_medians() -> None:
    cells = [
        _runs("gunicorn-sync", [5.0, 20.0, 30.0]),
        _runs("gunicorn-gthread", [10.0, 10.0, 10.0]),
        _runs("x", [10.0, 40.0, 30.0]),
        Cell(workloads.WORKLOADS[0], "corral-sync", note="not available"),
    ]
    lines = tables.rounds_table(cells)
    assert lines[:3] == ["## Round by round", "", "### WSGI"]
    assert (
        lines[4] == "| workload | server | req/s per round | vs granian | vs gunicorn sync"
        " | vs gunicorn gthread |"
    )
    assert (
        "| hello | x | 10 / 40 / 30 | - | 2.00x / 2.00x / 1.00x | 1.00x / 4.00x / 3.00x |" in lines
    )
    assert not any("corral-sync" in line for line in lines)  # no runs, no row
    assert tables.round_ratios(cells[2], None) is None


def _columns(line: str) -> list[str]:
    return [value.strip() for value in line.strip().strip("|").split("|")]


def test_every_row_has_a_ratio_against_granian_from_the_same_rounds() -> None:
    # Recorded-style rounds on a machine that slowed down in round 2 and sped up in round 3.
    # granian's rounds move with it, so each corral row's ratio is the median of round k's
    # ratios: corral-threaded 0.80, 0.90, 1.00 -> 0.90x, where its median rate over granian's
    # gives 32,000 / 40,000 = 0.80x; corral-threads-8 0.50, 1.00, 0.70 -> 0.70x, where the
    # medians give 20,000 / 40,000 = 0.50x.
    cells = [
        _runs("corral-threaded", [32_000.0, 18_000.0, 60_000.0]),
        _runs("corral-threads-8", [20_000.0, 20_000.0, 42_000.0]),
        _runs("corral-threads-128", [44_000.0, 30_000.0, 48_000.0]),
        _runs("gunicorn-sync", [8_000.0, 4_000.0, 12_000.0]),
        _runs("granian", [40_000.0, 20_000.0, 60_000.0]),
        Cell(workloads.WORKLOADS[0], "corral-sync", note="not available: x"),
    ]
    lines = tables.results_table(cells)
    names = _columns(lines[2])
    assert names[3:7] == ["req/s", "vs granian", "vs gunicorn sync", "vs gunicorn gthread"]
    by_server = {row[1]: row for row in map(_columns, lines[4:]) if len(row) > 1}
    at = names.index("vs granian")
    assert by_server["corral-threaded"][at] == "0.90x"
    assert by_server["corral-threads-8"][at] == "0.70x"
    assert by_server["corral-threads-128"][at] == "1.10x"  # 1.10, 1.50, 0.80
    assert by_server["gunicorn-sync"][at] == "0.20x"
    assert by_server["granian"][at] == "1.00x"
    assert by_server["corral-sync"][at] == "-"
    assert by_server["corral-threads-8"][at + 1] == "3.50x"  # 2.5, 5.0, 3.5: gunicorn kept
    assert all(len(row) == len(names) for row in by_server.values())
    rounds = {row[1]: row for row in map(_columns, tables.rounds_table(cells)[5:]) if len(row) > 1}
    assert rounds["corral-threads-8"][3] == "0.50x / 1.00x / 0.70x"
    # Not the ratio of the two medians shown (the way docs/performance.md used to compute it).
    rate = by_server["corral-threads-8"][3].replace(",", "")
    assert float(rate) / float(by_server["granian"][3].replace(",", "")) == 0.5


def test_asgi_rows_have_ratios_against_granian_asgi_and_uvicorn() -> None:
    hello = next(w for w in workloads.WORKLOADS if w.name == "asgi-hello")

    def asgi(server: str, rates: list[float]) -> Cell:
        return dataclasses.replace(_runs(server, rates), workload=hello)

    cells = [
        asgi("corral-asyncio", [30_000.0, 45_000.0, 20_000.0]),
        asgi("uvicorn-asgi", [20_000.0, 20_000.0, 20_000.0]),
        asgi("granian-asgi", [25_000.0, 50_000.0, 40_000.0]),
    ]
    lines = tables.results_table(cells)
    assert lines[0] == "### ASGI (HTTP)"
    names = _columns(lines[2])
    assert names[4:7] == ["vs granian asgi", "vs uvicorn asgi", "vs gunicorn asgi"]
    row = tables.result_row(cells[0], tables.baselines(cells, "asgi-hello"))
    assert row[4:7] == ["0.90x", "1.50x", "-"]  # 1.2/0.9/0.5 and 1.5/2.25/1.0; no gunicorn


def test_rounds_table_is_left_out_when_every_cell_ran_once() -> None:
    assert tables.rounds_table([_runs("gunicorn-sync", [5.0]), _runs("x", [10.0])]) == []


def test_cell_without_runs_shows_its_note_and_escapes_pipes() -> None:
    cell = Cell(workloads.WORKLOADS[0], "corral-sync", note="not available: a | b")
    row = tables.result_row(cell, {})
    assert row[2] == "not available: a | b"
    lines = tables.results_table([cell])
    assert lines[0] == "### WSGI"
    assert "a \\| b" in lines[4]
    assert len(row) == len(tables.header(tables.FAMILIES[0]))


def test_median_and_totals_over_runs() -> None:
    runs = [
        wrkrun.WrkResult(1, rps, 1.0, p99, 0.0, read_errors=1)
        for rps, p99 in [(10.0, 9.0), (30.0, 1.0), (20.0, 5.0)]
    ]
    cell = Cell(workloads.WORKLOADS[0], "s", runs=runs)
    assert cell.median(lambda r: r.requests_per_s) == 20.0
    assert cell.median(lambda r: r.p99_ms) == 5.0
    assert cell.total(lambda r: r.read_errors) == 3


def test_shown_command_names_python_and_keeps_placeholders() -> None:
    line = tables.shown_command([sys.executable, "-m", "gunicorn", "-b", "127.0.0.1:$PORT", "a b"])
    assert line == "python -m gunicorn -b 127.0.0.1:$PORT 'a b'"


def test_quick_changes_defaults_and_explicit_options_win() -> None:
    quick = run.parse_args(["--quick"], ["hello", "io"], ["a", "b"])
    assert (quick.workloads, quick.duration, quick.runs, quick.servers) == (
        ["hello", "asgi-hello"],
        1,
        1,
        ["a", "b"],
    )
    explicit = run.parse_args(["--quick", "--runs", "3", "--workloads", "io, hello"], ["x"], ["a"])
    assert (explicit.workloads, explicit.runs) == (["io", "hello"], 3)
    full = run.parse_args([], ["hello", "io"], ["a"])
    assert (full.workloads, full.runs) == (["hello", "io"], run.DEFAULT_RUNS)


def _call(app: WsgiApp, environ: dict[str, Any]) -> tuple[str, bytes]:
    seen: list[str] = []
    body = b"".join(app(environ, lambda status, headers: seen.append(status)))
    return seen[0], body


def test_apps_answer_as_the_workloads_expect() -> None:
    assert _call(wsgi_apps.hello, {}) == ("200 OK", b"Hello, World!")
    assert len(_call(wsgi_apps.big, {})[1]) == 1024 * 1024
    payload = b"x" * (workloads.ECHO_BODY_BYTES + 3)
    environ = {"wsgi.input": io.BytesIO(payload), "CONTENT_LENGTH": str(len(payload))}
    assert _call(wsgi_apps.echo, environ) == ("200 OK", str(len(payload)).encode())
    assert _call(wsgi_apps.cpu, {})[1] == str(wsgi_apps.cpu_work(wsgi_apps.CPU_ITERATIONS)).encode()


def _judged(server: str, *runs: wrkrun.WrkResult, skipped: bool = False) -> Cell:
    return Cell(workloads.WORKLOADS[0], server, "cfg", list(runs), skipped=skipped)


CLEAN = wrkrun.WrkResult(100, 1000.0, 1.0, 2.0, 0.5)


def test_clean_corral_cells_and_failing_peers_pass_the_exit_rule() -> None:
    ours = {"corral-sync", "corral-asyncio"}
    cells = [
        _judged("corral-sync", CLEAN, CLEAN),
        _judged("gunicorn-sync"),  # a peer that did not start is a note, not a failure
        _judged("granian", dataclasses.replace(CLEAN, timeouts=9, non_2xx=3)),
        _judged("corral-asyncio", skipped=True),  # the workload's optional module is missing
    ]
    assert run.corral_failures(cells, ours) == []


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (None, "hello x corral-sync: not available: exited"),
        (dataclasses.replace(CLEAN, read_errors=2, timeouts=1), "hello x corral-sync: 3 socket"),
        (dataclasses.replace(CLEAN, connect_errors=1), "hello x corral-sync: 1 socket"),
        (dataclasses.replace(CLEAN, non_2xx=4), "hello x corral-sync: 4 non-2xx"),
    ],
)
def test_corral_cell_without_runs_or_with_errors_fails(
    bad: wrkrun.WrkResult | None, expected: str
) -> None:
    cell = _judged("corral-sync", CLEAN) if bad is None else _judged("corral-sync", CLEAN, bad)
    if bad is None:
        cell.runs.clear()
        cell.note = "not available: exited"
    failures = run.corral_failures([cell, _judged("corral-threaded", CLEAN)], {"corral-sync"})
    assert len(failures) == 1
    assert failures[0].startswith(expected)


def test_a_client_side_ebadf_is_not_counted_as_the_servers_failure() -> None:
    from benchmarks.reliability_clients import CLIENT_FAULT, FAILURES, classify_error

    ebadf = httpx.ReadError("[Errno 9] Bad file descriptor")
    ebadf.__cause__ = OSError(errno.EBADF, "Bad file descriptor")
    assert classify_error(ebadf).kind == CLIENT_FAULT and CLIENT_FAULT not in FAILURES
    reset = httpx.ReadError("[Errno 104] Connection reset by peer")
    reset.__cause__ = ConnectionResetError(errno.ECONNRESET, "reset")
    assert classify_error(reset).kind == "reset"
