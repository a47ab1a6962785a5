"""`corral tune APP`: the command line, and the run from the app alone to the written report."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

from corral.arbiter.sizing import usable_cpus
from corral.config import Config, load
from corral.errors import AppLoadError, ConfigError, CorralError
from corral.tune import conffile, procs, report, svgplot
from corral.tune.choose import pick
from corral.tune.model import Cell, Measurement
from corral.tune.progress import Progress
from corral.tune.requests import RequestSpec, requests_from
from corral.tune.runner import Bench, LoadPlan
from corral.tune.search import Bounds, search
from corral.tune.server import ServerPlan, without_bind

PROG = "corral tune"
USAGE = (
    "corral tune APP [--url PATH ...] [--requests FILE] [--time SECONDS] [--out DIR] "
    "[corral's settings flags]"
)
EPILOG = """\
Every other flag is one of corral's settings (`corral --help`), and the app's config file
(-c, ./corral.conf.py), CORRAL_* variables and GUNICORN_CMD_ARGS apply as they do for `corral`;
tune sets workers, threads and worker_class itself (-k on this command line keeps it to that
worker class) and listens on 127.0.0.1 only. See docs/tuning.md.
"""
INTERFACE = re.compile(r"loads as an? (wsgi|asgi) app")
MEMORY_SHARE = 0.8  # of the memory limit, what the pick may take
PROBE_WINDOW_S, PROBE_WARMUP_S = 0.5, 0.2  # the app alone, at most


def build_parser() -> argparse.ArgumentParser:
    """tune's own flags; everything else goes to corral's settings."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage=USAGE,
        description="Measure an app on loopback and pick its workers, threads and worker class.",
        epilog=EPILOG,
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--url", action="append", default=[], metavar="PATH", help="a path to GET; repeatable")
    add("--requests", metavar="FILE", help="a file of requests, one JSON object a line")
    add("--time", type=float, default=3.0, metavar="SECONDS", help="measured per run [3]")
    add("--warmup", type=float, default=None, metavar="SECONDS", help="[time / 3, 1 to 2]")
    add("--out", default="corral-tune", metavar="DIR", help="where the report goes [corral-tune]")
    add("--connections", type=int, default=256, metavar="N", help="clients at once [256]")
    add("--load-processes", type=int, default=0, metavar="N", help="load generator processes")
    add("--max-runs", type=int, default=8, metavar="N", help="runs after the probe [8]")
    add("--max-workers", type=int, default=0, metavar="N", help="[2 x CPUs + 1]")
    add("--thread-limit", type=int, default=128, metavar="N", help="most threads tried [128]")
    add("--margin", type=float, default=0.05, metavar="SHARE", help="noise margin [0.05]")
    add("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `corral tune`; returns the exit status (0: a pick was written)."""
    given = sys.argv[1:] if argv is None else list(argv)
    ns, rest = build_parser().parse_known_args(given)
    # TERM (a CI timeout, kill PID) stops the servers and load generators as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _tune(ns, without_bind(rest), ["corral", "tune", *given])
    except AppLoadError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except CorralError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; the servers it started are stopped", file=sys.stderr)
        return 130


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _checked_config(args: list[str], out: Path) -> Config:
    cfg = load(args, os.environ)
    if cfg.app_uri is None:
        raise ConfigError(f"no application given: {USAGE}")
    for name in ("daemon", "reload", "check_config", "print_config"):
        if getattr(cfg, name):
            raise ConfigError(f"{name} is on (from {cfg.source_of(name)}); tune cannot run it")
    if (
        cfg.config
        and Path(str(cfg.config).removeprefix("file:")).resolve() == out / "corral.conf.py"
    ):
        raise ConfigError(f"--out {out} would overwrite the config file tune runs with")
    return cfg


def interface_of(args: list[str]) -> str:
    """ "wsgi" or "asgi", from `corral --check-config` in a child (which imports the app)."""
    done = subprocess.run(
        [sys.executable, "-m", "corral", *args, "--check-config"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found = INTERFACE.search(done.stdout)
    if done.returncode != 0 or found is None:
        detail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise AppLoadError("the app does not load: " + " / ".join(detail))
    return found.group(1)


def kinds_for(cfg: Config, interface: str) -> tuple[str, ...]:
    """The worker classes to search: -k on tune's command line keeps it to that one."""
    if interface == "asgi":
        return ("asyncio",)
    if cfg.source_of("worker_class").startswith("command line"):
        if cfg.worker_class not in ("sync", "threaded"):
            raise ConfigError(f"-k {cfg.worker_class}: tune searches sync or threaded for WSGI")
        return (cfg.worker_class,)
    return ("threaded", "sync")


@dataclass
class Setup:
    """A tuning run's fixed parts, from the command line and the machine."""

    cfg: Config
    out: Path
    interface: str
    bounds: Bounds
    load: LoadPlan
    plan: ServerPlan
    memory_limit: int | None
    memory_source: str


def _overrides(cfg: Config, out: Path) -> list[str]:
    """Settings that must not touch what a running server of the app uses (its pid file, its
    metrics port): moved into the output directory."""
    extra = []
    if cfg.pidfile:
        extra += ["--pid", str(out / "tune.pid")]
    if cfg.metrics_bind:
        extra += ["--metrics-bind", f"unix:{out / 'metrics.sock'}"]
    return extra


def _setup(ns: argparse.Namespace, args: list[str]) -> Setup:
    out = Path(ns.out).resolve()
    cfg = _checked_config(args, out)
    if ns.time <= 0 or ns.connections < 1 or ns.max_runs < 1:
        raise ConfigError("--time, --connections and --max-runs must be positive")
    specs: list[RequestSpec] = requests_from(ns.url, ns.requests)
    interface = interface_of(args)
    cpus = usable_cpus()
    limit, source = procs.memory_limit()
    bounds = Bounds(
        cpus=cpus,
        kinds=kinds_for(cfg, interface),
        max_workers=ns.max_workers or 2 * cpus + 1,
        max_threads=max(1, ns.thread_limit),
        memory_budget_mib=limit * MEMORY_SHARE / 2**20 if limit else None,
        margin=ns.margin,
        max_runs=ns.max_runs,
    )
    # At least a second: a threaded pool starts with one thread and doubles about ten times a
    # second while all of them wait, so 64 threads take most of a second to appear.
    warmup = ns.warmup if ns.warmup is not None else min(2.0, max(1.0, ns.time / 3))
    processes = ns.load_processes or min(2, cpus)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    plan = ServerPlan(args=args, cwd=os.getcwd(), log_dir=logs, overrides=_overrides(cfg, out))
    load_plan = LoadPlan(specs, ns.connections, processes, warmup, ns.time)
    return Setup(cfg, out, interface, bounds, load_plan, plan, limit, source)


def _probe(setup: Setup, bench: Bench, progress: Progress) -> Measurement:
    """The app alone: one client, one worker, one thread, briefly. It gives the mean wall and
    CPU time of a request (their ratio sets the first thread count), not a rate: half a second
    is about 45 requests of the I/O-bound reference app. Three times each against a second's
    window, the ratio came out at 22.6-31.5 against 23.1-24.7 on io, 1.0-1.1 both on cpu and
    5.9-6.8 against 5.8-6.9 on mixed."""
    cell = Cell(setup.bounds.kinds[0], 1, 1)
    progress.label = "the app alone (1 client)"
    window = min(PROBE_WINDOW_S, setup.load.window_s)
    warmup = min(PROBE_WARMUP_S, setup.load.warmup_s)
    alone = LoadPlan(setup.load.requests, 1, 1, warmup, window)
    probe = bench.measure(alone, cell, "probe", progress.tick)
    if probe.failure or not probe.responses:
        raise AppLoadError(f"the app alone gave no answers: {probe.failure or 'none'}")
    return probe


def _run_all(setup: Setup, bench: Bench, argv: list[str], progress: Progress) -> report.Run:
    """The probe, then the search, one measured cell at a time."""
    load_plan = setup.load
    probe = _probe(setup, bench, progress)
    run = report.Run(
        app=str(setup.cfg.app_uri),
        command=argv,
        started=time.strftime("%Y-%m-%d %H:%M:%S"),
        cpus=setup.bounds.cpus,
        interface=setup.interface,
        bounds=setup.bounds,
        connections=load_plan.connections,
        processes=load_plan.processes,
        warmup_s=load_plan.warmup_s,
        window_s=load_plan.window_s,
        requests=[f"{r.method} {r.path}" for r in load_plan.requests],
        memory_limit=setup.memory_limit,
        memory_source=setup.memory_source,
        probe=probe,
    )
    progress.line(f"{PROG}: the app alone: {probe.mean_ms:.2f} ms, {probe.cpu_ms:.2f} ms CPU")
    flow = search(probe, setup.bounds)
    step = next(flow)
    while True:
        run.steps.append(step)
        if step.cell is None:
            return run
        index = len(run.history) + 1
        progress.start_run(index, step.cell.label())
        name = f"run{index}-{step.cell.kind}-w{step.cell.workers}-t{step.cell.threads}"
        load = replace(load_plan, window_s=step.window_s(load_plan.window_s))
        m = bench.measure(load, step.cell, name, progress.tick)
        run.history.append(m)
        progress.line(_one_line(index, m))
        best = max(run.history, key=lambda h: h.rps)
        progress.best = f"{best.cell.label()} {best.rps:,.0f} req/s"
        step = flow.send(m)


def _one_line(index: int, m: Measurement) -> str:
    if m.failure:
        return f"{PROG}: run {index}: {m.cell.label()}: failed: {m.failure.splitlines()[0]}"
    return (
        f"{PROG}: run {index}: {m.cell.label()}: {m.rps:,.0f} req/s, p99 {m.p99_ms:.0f} ms, "
        f"CPU {m.cpu_ms:.2f} ms/req, busiest worker {m.worker_cores:.2f} cores"
    )


def _tune(ns: argparse.Namespace, args: list[str], command: list[str]) -> int:
    began = time.monotonic()
    setup = _setup(ns, args)
    progress = Progress(setup.bounds.max_runs, enabled=False if ns.no_progress else None)
    bench = Bench(setup.plan)
    try:
        run = _run_all(setup, bench, command, progress)
    finally:
        progress.close()
        bench.close()
    run.pick, run.pick_reason = pick(run.history, setup.bounds, run.steps)
    run.seconds = time.monotonic() - began
    svg = svgplot.figure(
        run.history, run.pick.cell if run.pick else None, f"corral tune: {run.app}"
    )
    paths = report.write(run, setup.out, svg)
    if run.pick is None:
        print(f"{PROG}: no configuration served without failures; see {paths['markdown']}")
        return 1
    conf = setup.out / "corral.conf.py"
    conf.write_text(conffile.render(setup.cfg, run.pick, run.app, str(paths["html"])))
    p = run.pick
    print(f"{PROG}: pick: {p.cell.label()}: {p.rps:,.0f} req/s, p99 {p.p99_ms:.0f} ms")
    print(f"{PROG}: {run.pick_reason}")
    print(f"{PROG}: report: {paths['html']} ({run.seconds:.0f} s)")
    print(f"{PROG}: run it: corral -c {conf} {run.app}")
    return 0
