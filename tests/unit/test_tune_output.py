"""corral tune's outputs from recorded numbers: report (Markdown, CSV, HTML), SVG plot, the
config file, the progress bar, and the /proc stat parser."""

from __future__ import annotations

import ast
import csv
import io
import os
import xml.etree.ElementTree as ET

from corral.config import load
from corral.tune import conffile, procs, report, svgplot
from corral.tune.model import Cell, Measurement, failed
from corral.tune.progress import Progress
from corral.tune.search import Bounds, Step


def m(kind: str, workers: int, threads: int, rps: float, p99: float) -> Measurement:
    return Measurement(
        Cell(kind, workers, threads),
        256,
        rps,
        p99 / 2,
        p99,
        p99 / 2,
        int(rps),
        cpu_ms=0.2,
        worker_cores=0.4,
        memory_mib=20.0 * workers,
        worker_rss_mib=21.0,
        pool_threads=threads,
    )


PROBE = Measurement(Cell("threaded", 1, 1), 1, 95, 10.4, 12, 10.5, 190, cpu_ms=0.3)
HISTORY = [
    m("threaded", 2, 16, 3000, 150),
    m("threaded", 2, 32, 3500, 120),
    m("threaded", 3, 32, 5000, 90),
    failed(Cell("threaded", 4, 32), 256, "the server exited with status 3"),
    m("sync", 5, 1, 450, 900),
]


def run() -> report.Run:
    steps = [Step(h.cell, f"why {i}") for i, h in enumerate(HISTORY)] + [Step(None, "Search over.")]
    return report.Run(
        app="app:application",
        command=["corral", "tune", "app:application"],
        started="now",
        cpus=2,
        interface="wsgi",
        bounds=Bounds(cpus=2, kinds=("threaded", "sync"), max_workers=5, max_threads=128),
        connections=256,
        processes=2,
        warmup_s=1.0,
        window_s=3.0,
        requests=["GET /"],
        memory_limit=2**30,
        memory_source="the cgroup memory limit",
        probe=PROBE,
        steps=steps,
        history=HISTORY,
        pick=HISTORY[2],
        pick_reason="threaded 3x32 was the fastest.",
        seconds=40,
    )


def test_report_files(tmp_path):
    svg = svgplot.figure(HISTORY, HISTORY[2].cell, "t")
    paths = report.write(run(), tmp_path, svg)
    text = paths["markdown"].read_text()
    assert "**Pick: threaded 3x32**" in text and "threaded 3x32 was the fastest." in text
    assert "1. **threaded 2x16**: why 0" in text and "**end**: Search over." in text
    assert "the server exited with status 3" in text and "![" in text
    rows = list(csv.reader(io.StringIO(paths["csv"].read_text())))
    assert rows[0] == list(report.COLUMNS) and len(rows) == 1 + 1 + len(HISTORY)
    assert rows[4][4] == "5000" and rows[5][4] == "-"
    assert "Each run: 1 s warm-up, then 3 s measured." in text  # no run measured again


def test_report_says_how_long_the_confirmation_runs_measured(tmp_path):
    # The confirmation is now a pair, the two fastest measured again back to back (it was the
    # leader alone): the line says each of the two runs measured 1.5 s, and the JSON which
    # steps were paired.
    tuned = run()
    leader, runner_up = m("threaded", 3, 32, 4800, 95), m("threaded", 2, 32, 3400, 120)
    tuned.history = [*HISTORY, leader, runner_up]
    pair = [Step(x.cell, "again", 0.5, paired=True) for x in (leader, runner_up)]
    tuned.steps = [*tuned.steps[:-1], *pair, tuned.steps[-1]]
    paths = report.write(tuned, tmp_path, svgplot.figure(tuned.history, leader.cell, "t"))
    text = paths["markdown"].read_text()
    assert "then 3 s measured (1.5 s each for the two fastest measured again, back to back)." in (
        text
    )
    record = paths["json"].read_text()
    assert '"window_share": 0.5' in record and '"paired": true' in record
    page = paths["html"].read_text()
    assert "<svg" in page and "<b>Pick: threaded 3x32</b>" in page and "<table>" in page
    assert '"pick"' in paths["json"].read_text()


def test_svg_is_well_formed_and_marks_the_pick():
    svg = svgplot.figure(HISTORY, HISTORY[2].cell, "title & <more>")
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert svg.count("<title>the pick</title>") == 2  # throughput and p99 charts
    assert "sync worker" in svg  # the sync cells get their own charts, against workers
    assert svgplot.nice_ceiling(3700) == 5000 and svgplot.nice_ceiling(0) == 1.0
    assert ET.fromstring(svgplot.figure([], None)) is not None


def test_config_file_carries_the_users_settings(tmp_path):
    user = tmp_path / "app.conf.py"
    user.write_text("timeout = 60\nworkers = 9\n")
    cfg = load(["-c", str(user), "app:application", "--keep-alive", "7", "-w", "2"], {})
    text = conffile.render(cfg, HISTORY[2], "app:application", str(tmp_path / "report.html"))
    ast.parse(text)
    assert f"run_path({str(user)!r})" in text
    assert "keepalive = 7  # from command line --keep-alive" in text
    assert "worker_class = 'threaded'\nworkers = 3\nthreads = 32\n" in text
    assert "workers = 2" not in text  # tuned settings are the pick's, not the command line's
    out = tmp_path / "corral.conf.py"
    out.write_text(text)
    cfg = load(["-c", str(out)], {})
    assert (cfg.workers, cfg.threads, cfg.worker_class, cfg.timeout) == (3, 32, "threaded", 60)


def test_progress_bar_draws_and_clears_only_on_a_terminal():
    stream = io.StringIO()
    bar = Progress(4, stream=stream, enabled=True)
    bar.start_run(2, "threaded 2x16")
    bar.tick("measuring", 0.5, force=True)
    bar.line("run 2: 3,000 req/s")
    bar.close()
    text = stream.getvalue()
    assert "[######" in text and "run 2/4 threaded 2x16  measuring" in text
    assert "\x1b[2K" in text and "run 2: 3,000 req/s\n" in text
    quiet = io.StringIO()
    Progress(4, stream=quiet).tick("x", 0.5, force=True)  # StringIO is not a TTY
    assert quiet.getvalue() == ""


def test_proc_stat_parser_survives_odd_process_names():
    line = "123 (a) (b) c) S 7 123 123 0 -1 0 0 0 0 0 15 4 0 0 20 0 9 0 4242 0 0"
    assert procs.parse_stat(line) == (7, 9, 4242, 19)
    assert procs.stat_of(os.getpid()) is not None
    assert procs.usage(os.getpid()) is not None
    rss, _pss = procs.memory_kib(os.getpid())
    assert rss > 0
