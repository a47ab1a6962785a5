"""`corral tune` end to end, briefly: on the I/O-bound reference app it writes every output,
explains its pick, and the config file it writes runs the app as it is."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import CorralProcess

ROOT = Path(__file__).resolve().parents[2]


def test_tune_io_app_writes_a_report_and_a_config_that_runs(tmp_path: Path, corral_factory):
    out = tmp_path / "tuned"
    tune = [sys.executable, "-m", "corral", "tune", "tests.tune_apps:io", "--pythonpath", str(ROOT)]
    brief = ["--time", "0.5", "--warmup", "0.3", "--max-runs", "3", "--connections", "64"]
    done = subprocess.run(
        [*tune, *brief, "--out", str(out), "--keep-alive", "9"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "corral tune: pick: threaded" in done.stdout
    assert "\x1b[2K" not in done.stderr  # no progress bar without a terminal
    for name in ("report.md", "report.html", "results.csv", "plot.svg", "measurements.json"):
        assert (out / name).stat().st_size > 0, name
    record = json.loads((out / "measurements.json").read_text())
    pick = record["pick"]["cell"]
    label = f"threaded {pick['workers']}x{pick['threads']}"
    # The report says what was picked and why, step by step.
    report = (out / "report.md").read_text()
    assert f"**Pick: {label}**" in report and "was the fastest" in report
    assert "## How the search went" in report and "Start at 2 worker(s)" in report
    assert "mostly waits" in report  # the app alone: 10 ms of sleep, little CPU
    assert len(record["history"]) <= 3 and len(record["steps"]) == len(record["history"]) + 1
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert rows[0]["run"] == "0" and float(rows[1]["req/s"]) > 0
    assert "<svg" in (out / "report.html").read_text()
    conf = out / "corral.conf.py"
    text = conf.read_text()
    assert f"workers = {pick['workers']}\nthreads = {pick['threads']}" in text
    assert "keepalive = 9" in text  # tune's other settings flags carry over
    # The config file runs the app as it is (the address is the only thing added).
    server: CorralProcess = corral_factory(
        "-c", str(conf), "tests.tune_apps:io", "-b", "127.0.0.1:0"
    )
    server.wait_workers(lambda pids: len(pids) == pick["workers"])
    assert server.get("/") == (200, "ok\n")
    assert server.stop() == 0


def test_tune_refuses_an_app_that_does_not_load(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "corral", "tune", "no_such_module:app", "--out", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 4
    assert done.stderr.startswith("corral tune: error: the app does not load")
    assert not (tmp_path / "report.md").exists()
