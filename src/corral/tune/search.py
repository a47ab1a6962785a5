"""The search over workers x threads (and worker class): pure decisions on measurements.

`search(probe, bounds)` is a generator: it yields a `Step` (the next cell to measure and why),
is sent that cell's `Measurement`, and ends with a `Step` whose cell is None (why it stopped).
Nothing here touches a process or a clock, so the unit tests drive it with recorded numbers.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass

from corral.tune.choose import ERROR_LIMIT, between, combine, eligible
from corral.tune.model import Cell, Measurement

# Runs kept back for measuring the two fastest configurations again, back to back, when the
# runner-up is within CONFIRM_WITHIN of the leader.
CONFIRM_RUNS = 2
CONFIRM_WITHIN = 0.8
# Each of those runs measures this share of the window (at least a second, never more than the
# window): the pair costs about one full run and one more server start. What they are for is a
# comparison at one moment, and on a shared machine that moment's load is the larger error.
CONFIRM_WINDOW_SHARE = 0.5


@dataclass(frozen=True)
class Bounds:
    """What the search may try, and how large a change must be to count."""

    cpus: int
    kinds: tuple[str, ...]  # worker classes the app allows, the first searched first
    max_workers: int
    max_threads: int
    memory_budget_mib: float | None = None
    margin: float = 0.05  # a throughput change within this share is noise
    p99_margin: float = 0.5  # p99 may rise by this share before it counts as climbing
    max_runs: int = 8  # CONFIRM_RUNS of them kept back for the confirmation


@dataclass(frozen=True)
class Step:
    """The next cell to measure (None: the search is over), the reason, in words, the share of
    the window to measure it for (less than 1 for a confirmation run), and whether it is one of
    the two confirmation runs measured back to back (the pick compares those two, see
    choose.pick)."""

    cell: Cell | None
    reason: str
    window_share: float = 1.0
    paired: bool = False

    def window_s(self, full_s: float) -> float:
        """The seconds this step measures, given the full window: a shorter share is at least
        a second, and never longer than the full window."""
        if self.window_share >= 1.0:
            return full_s
        return max(full_s * self.window_share, min(full_s, 1.0))


@dataclass(frozen=True)
class Verdict:
    """How a measurement compares with the best so far."""

    better: bool
    gain: float  # relative throughput change
    p99_rise: float  # relative p99 change
    text: str


def judge(new: Measurement, best: Measurement, bounds: Bounds) -> Verdict:
    """Better means: fewer than 1 % failures, throughput up by more than the noise margin,
    and p99 not up by more than p99_margin."""
    if new.error_share > ERROR_LIMIT:
        why = new.failure or f"{new.error_share:.1%} of requests failed"
        return Verdict(False, -1.0, 0.0, f"{new.cell.label()}: {why}")
    gain = new.rps / best.rps - 1 if best.rps > 0 else math.inf
    p99_rise = new.p99_ms / best.p99_ms - 1 if best.p99_ms > 0 else 0.0
    text = (
        f"{new.cell.label()}: {new.rps:,.0f} req/s ({gain:+.0%} against {best.cell.label()}), "
        f"p99 {best.p99_ms:.0f} -> {new.p99_ms:.0f} ms"
    )
    if abs(new.others_cores - best.others_cores) > 0.25 * bounds.cpus:
        text += (
            f" (other processes kept {best.others_cores:.1f} then {new.others_cores:.1f} CPUs "
            "busy: a noisy comparison)"
        )
    if p99_rise > bounds.p99_margin:
        return Verdict(False, gain, p99_rise, f"{text}: p99 climbed by {p99_rise:.0%}")
    if gain > bounds.margin:
        return Verdict(True, gain, p99_rise, f"{text}: better")
    if gain >= -bounds.margin:
        return Verdict(False, gain, p99_rise, f"{text}: within the {bounds.margin:.0%} noise")
    return Verdict(False, gain, p99_rise, f"{text}: worse")


def own_wall_ms(probe: Measurement) -> float:
    """A request's time alone, less the time its threads waited for a CPU (another process's
    load on a shared machine, not the app's)."""
    return max(probe.cpu_ms, probe.mean_ms - probe.runq_ms)


def threads_per_worker(probe: Measurement) -> float:
    """How many requests one worker overlaps before its CPU (its GIL) is busy: wall / CPU.

    Alone, a request takes `own_wall_ms` of which `cpu_ms` on a CPU. One process runs Python on
    one core at a time, so it completes at most 1000 / cpu_ms requests a second; to keep that
    many going, each lasting the wall time, it needs wall / cpu_ms in flight (Little's law).
    """
    if probe.cpu_ms <= 0 or probe.mean_ms <= 0:
        return 1.0
    return max(1.0, own_wall_ms(probe) / probe.cpu_ms)


def start_threads(probe: Measurement, bounds: Bounds) -> int:
    """threads_per_worker to the nearest power of two, on a log scale (21 -> 16, 23 -> 32).
    Alone a request costs more CPU than among many (no batching of wake-ups and reads), so the
    estimate is low rather than high; a start that proves too high is halved afterwards, and one
    too low costs a doubling run (the I/O-bound reference app's estimate is 21-31: started at 16,
    it spent four of its runs on threads at one worker per CPU)."""
    wanted = threads_per_worker(probe)
    power = 1 << max(0, round(math.log2(max(1.0, wanted))))
    return max(1, min(power, bounds.max_threads))


def profile_text(probe: Measurement) -> str:
    """The app alone, in words: how long a request takes and how much of it computes."""
    if probe.failure or probe.responses == 0:
        return f"the app could not be measured alone: {probe.failure or 'no answers'}"
    wall = own_wall_ms(probe)
    share = probe.cpu_ms / wall if wall else 0.0
    kind = "waits and computes"
    if share < 0.3 or share > 0.7:
        kind = "mostly waits" if share < 0.3 else "mostly computes"
    waited = (
        f" (and {probe.runq_ms:.2f} ms more waiting for a CPU other processes held)"
        if probe.runq_ms >= 0.05 * probe.mean_ms
        else ""
    )
    return (
        f"Alone (one client, one worker) a request takes {wall:.2f} ms{waited}, "
        f"{probe.cpu_ms:.2f} ms of it on a CPU ({share:.0%}): it {kind}. One worker can keep "
        f"about {threads_per_worker(probe):.0f} such requests going before its CPU (the GIL) "
        "is the limit."
    )


def _fits(m: Measurement, workers: int, bounds: Bounds) -> tuple[bool, str]:
    """Whether `workers` processes of the kind measured in `m` fit the memory budget."""
    if bounds.memory_budget_mib is None or m.memory_mib <= 0:
        return True, ""
    predicted = m.memory_mib * workers / max(1, m.cell.workers)
    if predicted <= bounds.memory_budget_mib:
        return True, ""
    return False, (
        f"{workers} workers would take about {predicted:.0f} MiB "
        f"(measured {m.memory_mib:.0f} MiB for {m.cell.workers}), over the "
        f"{bounds.memory_budget_mib:.0f} MiB budget"
    )


Search = Generator[Step, Measurement, None]


class _State:
    """The run budget and the verdicts not yet told (they lead the next step's reason)."""

    def __init__(self, bounds: Bounds) -> None:
        self.bounds = bounds
        self.reserve = CONFIRM_RUNS if bounds.max_runs > CONFIRM_RUNS + 2 else 0
        self.left = bounds.max_runs - self.reserve
        self.pending: list[str] = []
        self.history: list[Measurement] = []
        self.spent = False  # the budget ran out (said once)

    def note(self, text: str) -> None:
        self.pending.append(text)

    def reason(self, text: str) -> str:
        told = " ".join([*self.pending, text])
        self.pending = []
        return told


Phase = Generator[Step, Measurement, Measurement | None]


def _try(state: _State, cell: Cell, why: str, share: float = 1.0, paired: bool = False) -> Phase:
    """Measure `cell` (for `share` of the window) if the run budget allows; None when it does
    not."""
    if state.left <= 0:
        if not state.spent:
            state.note(f"The run budget is spent: {cell.label()} untried.")
        state.spent = True
        return None
    state.left -= 1
    measurement = yield Step(cell, state.reason(why), share, paired)
    state.history.append(measurement)
    return measurement


def limit_hint(m: Measurement, cpus: int) -> str:
    """What held a configuration back, from the server's side, when one thing clearly did."""
    if m.pool_threads and m.cell.kind == "threaded" and m.pool_threads * 2 <= m.cell.threads:
        return (
            f" The pool grew to {m.pool_threads} of its {m.cell.threads} threads: corral adds "
            "threads only while all of them wait, so more were never used."
        )
    if m.worker_cores >= 0.85 and m.cell.threads > 1:
        return (
            f" The busiest worker used {m.worker_cores:.2f} of a core: its threads take turns "
            "on the GIL, so more threads cannot make it faster."
        )
    busy = m.server_cores + m.generator_cores
    if m.server_cores and busy >= 0.9 * cpus:
        return (
            f" The CPUs are full (server {m.server_cores:.1f} + load generator "
            f"{m.generator_cores:.1f} of {cpus})."
        )
    return ""


def _keep_going(state: _State, v: Verdict, patient: bool, what: str) -> str:
    """Returns "better", "again" or "stop". Once per phase, a change inside the noise (or a
    dip of up to twice the margin), or a gain with a p99 spike, gets one more step: one run on
    a busy machine can show either, and a plateau can hide a rise one step further (io: two
    workers to three flat, three to four +20 %; mixed: 8 to 16 threads -10 %, 32 +6 %, 64 +25 %).
    """
    bounds = state.bounds
    if v.better:
        state.note(f"{v.text}.")
        return "better"
    if (
        not patient
        and -2 * bounds.margin <= v.gain <= bounds.margin
        and v.p99_rise <= bounds.p99_margin
    ):
        state.note(f"{v.text}; one more step, as a plateau or a dip may hide a rise beyond it.")
        return "again"
    if not patient and v.gain > bounds.margin and v.p99_rise > bounds.p99_margin:
        state.note(f"{v.text}; one more step, to see whether the climb holds.")
        return "again"
    state.note(f"{v.text}: stop {what}.")
    return "stop"


def _pool_unused(state: _State, m: Measurement, v: Verdict | None = None) -> bool:
    """Whether the threaded pool stayed well below its bound: a higher bound would not be used."""
    if m.cell.kind != "threaded" or not m.pool_threads or m.pool_threads * 2 > m.cell.threads:
        return False
    state.note(
        (f"{v.text}. " if v else "")
        + f"The pool grew to {m.pool_threads} of its {m.cell.threads} threads (corral adds "
        "threads only while all of them wait): a higher bound would not be used, stop adding "
        "threads."
    )
    return True


def _grow_threads(state: _State, workers: int, start: int, why: str) -> Phase:
    """Double the threads from `start` while throughput improves and p99 holds."""
    bounds, threads = state.bounds, start
    best: Measurement | None = None
    patient = False
    while True:
        m = yield from _try(state, Cell("threaded", workers, threads), why)
        if m is None:
            return best
        if best is None:
            if m.error_share > ERROR_LIMIT:
                state.note(f"{m.cell.label()}: {m.failure or 'requests failed'}.")
                return None
            best = m
            state.note(f"{m.cell.label()}: {m.rps:,.0f} req/s, p99 {m.p99_ms:.0f} ms.")
            if _pool_unused(state, m):
                return best
        else:
            v = judge(m, best, bounds)
            if not v.better and _pool_unused(state, m, v):
                return best
            outcome = _keep_going(state, v, patient, "adding threads")
            if outcome == "stop":
                state.pending[-1] += limit_hint(m, bounds.cpus)
                return best
            patient = outcome == "again"
            best = m if v.better else best
            if v.better and _pool_unused(state, m):
                return best
        if threads * 2 > bounds.max_threads:
            state.note(f"{bounds.max_threads} threads is the bound.")
            return best
        threads *= 2
        why = f"Doubling the threads: {Cell('threaded', workers, threads).label()}."


def _shrink_threads(state: _State, best: Measurement, start: int) -> Phase:
    """When the first thread count was the best, halve it while that is better."""
    threads = start // 2
    if best.cell.threads != start or threads < 1:
        return best
    if best.cell.kind == "threaded" and 0 < best.pool_threads <= threads:
        return best  # the pool ran no more threads than the halved bound: the same server
    while threads >= 1:
        cell = Cell("threaded", best.cell.workers, threads)
        m = yield from _try(state, cell, f"The first count was the best: fewer, {cell.label()}.")
        if m is None:
            return best
        v = judge(m, best, state.bounds)
        if _keep_going(state, v, True, "removing threads") == "stop":
            return best
        best, threads = m, threads // 2
    return best


def _grow_workers(state: _State, best: Measurement) -> Phase:
    """One worker more at a time while that is better and fits memory: at the same threads, or,
    once, at half of them when the same threads were not better (the clients spread over more
    processes need fewer threads each, and each GIL has fewer threads to switch between: on io,
    2x64 to 3x64 measured -15 % where 4x32 and 5x32 were the grid's best)."""
    bounds, patient, halved = state.bounds, False, False
    anchor, threads = best, best.cell.threads
    workers = best.cell.workers + 1
    while workers <= bounds.max_workers:
        fits, why = _fits(anchor, workers, bounds)
        if not fits:
            state.note(f"{why}: no more workers.")
            return best
        cell = Cell(best.cell.kind, workers, threads)
        m = yield from _try(state, cell, f"One more worker process: {cell.label()}.")
        if m is None:
            return best
        v = judge(m, best, bounds)
        outcome = _keep_going(state, v, patient, f"adding workers at {threads} threads")
        if outcome == "stop" and not halved and cell.kind == "threaded" and threads >= 2:
            halved, threads = True, threads // 2
            state.note("Half the threads instead, over more processes.")
            continue
        if outcome == "stop":
            return best
        patient = outcome == "again"
        best = m if v.better else best
        anchor = m
        workers += 1
    state.note(f"{bounds.max_workers} workers is the bound.")
    return best


def _refine(state: _State, best: Measurement, first_workers: int, threads: int) -> Phase:
    """More workers share the clients, so each may need fewer threads: try half once (unless
    the workers phase already halved them)."""
    if best.cell.kind != "threaded" or best.cell.workers <= first_workers or best.cell.threads < 2:
        return best
    if best.cell.threads != threads:
        return best
    cell = Cell("threaded", best.cell.workers, best.cell.threads // 2)
    why = f"With more workers each may need fewer threads: {cell.label()}."
    m = yield from _try(state, cell, why)
    if m is None:
        return best
    v = judge(m, best, state.bounds)
    state.note(f"{v.text}.")
    return m if v.better else best


def _wants_sync(probe: Measurement, best: Measurement | None, bounds: Bounds) -> bool:
    """The sync worker is worth a run when threads did not help or the app mostly computes."""
    if "sync" not in bounds.kinds:
        return False
    if best is None:
        return True
    computes = probe.mean_ms > 0 and probe.cpu_ms / own_wall_ms(probe) > 0.5
    return best.cell.threads <= 2 or computes


def _try_sync(state: _State, best: Measurement | None) -> Phase:
    """One sync run at 2 x CPUs + 1 processes (gunicorn's rule, corral's `auto` for sync)."""
    bounds = state.bounds
    workers = min(bounds.max_workers, 2 * bounds.cpus + 1)
    if best is not None:
        fits, why = _fits(best, workers, bounds)
        if not fits:
            state.note(f"{why}: the sync worker is not tried.")
            return best
    cell = Cell("sync", workers, 1)
    why = (
        "Threads helped little: try the sync worker (one request per process at a time) with "
        f"2 x CPUs + 1 processes, {cell.label()}."
    )
    m = yield from _try(state, cell, why)
    if m is None or best is None:
        return m if m is not None and m.error_share <= ERROR_LIMIT else best
    v = judge(m, best, bounds)
    state.note(f"{v.text}.")
    return m if v.better else best


def _processes_only(state: _State, kind: str) -> Phase:
    """sync or asyncio alone: one worker per CPU, then more while better."""
    workers = min(max(1, state.bounds.cpus), state.bounds.max_workers)
    cell = Cell(kind, workers, 1)
    m = yield from _try(state, cell, f"Start at one worker per CPU: {cell.label()}.")
    if m is None or m.error_share > ERROR_LIMIT:
        state.note(f"{cell.label()}: {m.failure if m else 'not measured'}.")
        return None
    state.note(f"{m.cell.label()}: {m.rps:,.0f} req/s, p99 {m.p99_ms:.0f} ms.")
    best = yield from _grow_workers(state, m)
    return best


def search(probe: Measurement, bounds: Bounds) -> Generator[Step, Measurement, None]:
    """Threads first (at one worker per CPU), then workers, then the other worker class."""
    state = _State(bounds)
    first_workers = min(max(1, bounds.cpus), bounds.max_workers)
    best: Measurement | None = None
    if bounds.kinds[0] == "threaded":
        start = start_threads(probe, bounds)
        why = (
            f"Start at {first_workers} worker(s), one per CPU, with {start} thread(s) each: "
            f"alone, one worker could keep about {threads_per_worker(probe):.0f} requests going "
            "(the nearest power of two)."
        )
        best = yield from _grow_threads(state, first_workers, start, why)
        if best is not None:
            best = yield from _shrink_threads(state, best, start)
        if best is not None:
            threads = best.cell.threads
            best = yield from _grow_workers(state, best)
        if best is not None:
            best = yield from _refine(state, best, first_workers, threads)
        if _wants_sync(probe, best, bounds):
            best = yield from _try_sync(state, best)
    else:
        best = yield from _processes_only(state, bounds.kinds[0])
    yield from _confirm(state)
    yield Step(None, state.reason("Search over." if best else "No configuration served."))


def _confirm(state: _State) -> Generator[Step, Measurement, None]:
    """When the runner-up is within a fifth of the fastest, both are measured again, back to
    back, in shorter runs, and the pick decides between the two on that pair alone (their ratio,
    choose.between), not on means of runs taken minutes apart.

    On a shared machine others' load moves from minute to minute, so two runs minutes apart are
    not comparable, and two back to back are (benchmarks compare in turns for that reason). The
    form before this one measured the leader alone again and took each configuration's mean: on
    io, 4x128 led at 9,004 req/s, its second run met other processes holding 0.6 CPUs and gave
    4,755, and 2x128 (7,830, measured once, at a quieter moment) became the pick, 0.68 of the
    grid's best in turns. A clear lead needs no run."""
    ranked = sorted(combine(eligible(state.history, state.bounds)), key=lambda m: -m.rps)
    if not state.reserve or len(ranked) < 2 or ranked[1].rps < CONFIRM_WITHIN * ranked[0].rps:
        return
    top, runner_up = ranked[0], ranked[1]
    state.left += state.reserve
    why = (
        f"{top.cell.label()} ({top.rps:,.0f} req/s) leads {runner_up.cell.label()} "
        f"({runner_up.rps:,.0f} req/s) by less than {1 - CONFIRM_WITHIN:.0%} in the search's "
        "runs, and others' load on the machine moves from minute to minute: both are measured "
        f"again, back to back, in shorter runs, and that pair decides. First {top.cell.label()}."
    )
    first = yield from _try(state, top.cell, why, CONFIRM_WINDOW_SHARE, paired=True)
    if first is None:
        return
    why = (
        f"{top.cell.label()} again: {first.rps:,.0f} req/s (other processes kept "
        f"{first.others_cores:.1f} CPUs busy). Right after it, {runner_up.cell.label()}."
    )
    second = yield from _try(state, runner_up.cell, why, CONFIRM_WINDOW_SHARE, paired=True)
    if second is not None:
        state.note(between(first, second, state.bounds)[1])


def run_search(
    probe: Measurement, bounds: Bounds, measure: dict[Cell, Measurement]
) -> tuple[list[Step], list[Measurement]]:
    """Drive `search` with measurements looked up in `measure` (recorded runs, for tests)."""
    steps: list[Step] = []
    history: list[Measurement] = []
    flow = search(probe, bounds)
    step = next(flow)
    while True:
        steps.append(step)
        if step.cell is None:
            return steps, history
        history.append(measure[step.cell])
        step = flow.send(history[-1])
