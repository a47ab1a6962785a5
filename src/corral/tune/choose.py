"""The pick from the measurements: each configuration's runs combined, the fastest within the
noise margin, then the lower p99 and the fewer processes and threads; when the two fastest were
measured again back to back, that pair decides between them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from statistics import fmean
from typing import TYPE_CHECKING

from corral.tune.model import Cell, Measurement

if TYPE_CHECKING:
    from corral.tune.search import Bounds, Step

# More than this share of requests failing (errors, 4xx/5xx) disqualifies a configuration.
ERROR_LIMIT = 0.01


def combine(history: Sequence[Measurement]) -> list[Measurement]:
    """One measurement per configuration, in the order first measured: the runs of one
    averaged (rate and latencies), their failures summed, the largest memory kept."""
    runs: dict[Cell, list[Measurement]] = {}
    for m in history:
        runs.setdefault(m.cell, []).append(m)
    combined = []
    for ms in runs.values():
        if len(ms) == 1:
            combined.append(ms[0])
            continue
        good = [m for m in ms if not m.failure] or ms
        combined.append(
            replace(
                good[-1],
                rps=fmean(m.rps for m in good),
                p50_ms=fmean(m.p50_ms for m in good),
                p99_ms=fmean(m.p99_ms for m in good),
                mean_ms=fmean(m.mean_ms for m in good),
                responses=sum(m.responses for m in good),
                errors=sum(m.errors for m in ms),
                bad_status=sum(m.bad_status for m in ms),
                memory_mib=max(m.memory_mib for m in ms),
                notes=(*good[-1].notes, f"the mean of {len(good)} runs"),
            )
        )
    return combined


def eligible(history: Sequence[Measurement], bounds: Bounds) -> list[Measurement]:
    """The measurements a pick may come from: few failures, within the memory budget."""
    budget = bounds.memory_budget_mib
    return [
        m
        for m in history
        if m.error_share <= ERROR_LIMIT and (budget is None or m.memory_mib <= budget)
    ]


def _runs(m: Measurement) -> str:
    counted = [n for n in m.notes if n.startswith("the mean of ")]
    return f", {counted[-1]}" if counted else ""


def between(
    first: Measurement, second: Measurement, bounds: Bounds
) -> tuple[Measurement | None, str]:
    """Of two runs measured back to back, the one to pick and why, on those two runs alone: the
    faster, unless the other is as fast within the noise margin; then, as `pick` does, the lower
    p99 (by more than a fifth), then the fewer processes x threads. A run with failures, or over
    the memory budget, loses; None when both do."""
    said = (
        f"Back to back, {first.cell.label()} gave {first.rps:,.0f} req/s and "
        f"{second.cell.label()} {second.rps:,.0f}"
    )
    ok = [m for m in (first, second) if eligible([m], bounds)]
    if len(ok) < 2:
        if not ok:
            return None, f"{said}: both failed or went over the memory budget."
        bad = second if ok[0] is first else first
        return ok[0], (
            f"{said}: {bad.cell.label()} failed or went over the memory budget, so "
            f"{ok[0].cell.label()} is the pick."
        )
    if first.rps > 0:
        said += f" ({second.rps / first.rps:.2f} of it)"
    if abs(first.others_cores - second.others_cores) > 0.25 * bounds.cpus:
        said += (
            f" (other processes kept {first.others_cores:.1f} then {second.others_cores:.1f} "
            "CPUs busy: a noisy comparison)"
        )
    top, other = (first, second) if first.rps >= second.rps else (second, first)
    if other.rps < top.rps * (1 - bounds.margin):
        return top, (
            f"{said}: {top.cell.label()} is faster by more than the {bounds.margin:.0%} noise "
            "margin, the pick."
        )
    low = min(first.p99_ms, second.p99_ms)
    calm = [m for m in (top, other) if m.p99_ms <= low * 1.2]
    chosen = min(calm, key=lambda m: (m.cell.workers * m.cell.threads, m.cell.workers, -m.rps))
    if chosen is top:
        because = "the faster"
    else:
        lower = chosen.p99_ms * 1.2 < top.p99_ms
        because = "with a lower p99" if lower else "with fewer processes or threads"
    return chosen, (
        f"{said}: as fast within the {bounds.margin:.0%} noise margin (p99 "
        f"{first.p99_ms:.0f} and {second.p99_ms:.0f} ms); {chosen.cell.label()}, {because}, "
        "is the pick."
    )


def paired(
    history: Sequence[Measurement], steps: Sequence[Step]
) -> tuple[Measurement, Measurement] | None:
    """The two runs the search measured back to back (steps marked `paired`), if both ran."""
    marked = [m for m, s in zip(history, steps, strict=False) if s.paired]
    if len(marked) < 2 or marked[-2].cell == marked[-1].cell:
        return None
    return marked[-2], marked[-1]


def pick(
    history: Sequence[Measurement], bounds: Bounds, steps: Sequence[Step] = ()
) -> tuple[Measurement | None, str]:
    """The configuration to run and why: the fastest (each configuration's runs averaged),
    unless others are as fast within the noise margin; among those, the lower p99 (by more than
    a fifth), then the fewest processes x threads.

    When the search measured the two fastest again back to back (`steps` marks those runs),
    the pick is one of the two, decided on that pair alone (`between`): on a shared machine the
    load moves from minute to minute, so runs taken back to back are comparable and runs taken
    minutes apart, averaged or not, are not. The configuration picked is returned with its runs
    combined.

    Otherwise, when two or more configurations were measured more than once, the pick is one of
    those: a configuration measured once and left unconfirmed would win on a lucky run (on io,
    2x128 once at 10,192 req/s beat 3x128 and 4x128 averaged over two runs, and was 0.72 of the
    grid's best in turns). The search no longer repeats runs that way, so this applies to
    histories put together otherwise (an older search's).
    """
    ok = eligible(combine(history), bounds)
    if not ok:
        return None, "No configuration answered without failures."
    pair = paired(history, steps)
    if pair is not None:
        run, told = between(*pair, bounds)
        chosen_pair = [m for m in ok if run is not None and m.cell == run.cell]
        if chosen_pair:
            once = {m.cell: m.rps for m in reversed(history) if all(m is not p for p in pair)}
            lead, runner_up = pair
            why = (
                f"{lead.cell.label()} was the fastest in the search's runs "
                f"({once.get(lead.cell, lead.rps):,.0f} req/s) and {runner_up.cell.label()} "
                f"close behind ({once.get(runner_up.cell, runner_up.rps):,.0f}). {told}"
            )
            return chosen_pair[0], why
    confirmed = [m for m in ok if _runs(m)]
    ok = confirmed if len(confirmed) >= 2 else ok
    top = max(ok, key=lambda m: m.rps)
    near = [m for m in ok if m.rps >= top.rps * (1 - bounds.margin)]
    low = min(m.p99_ms for m in near)
    calm = [m for m in near if m.p99_ms <= low * 1.2]
    chosen = min(calm, key=lambda m: (m.cell.workers * m.cell.threads, m.cell.workers, -m.rps))
    why = (
        f"{top.cell.label()} was the fastest ({top.rps:,.0f} req/s, p99 {top.p99_ms:.0f} ms"
        f"{_runs(top)})."
    )
    if chosen is not top:
        because = (
            "a lower p99" if chosen.p99_ms * 1.2 < top.p99_ms else "fewer processes or threads"
        )
        why += (
            f" {chosen.cell.label()} is as fast within the {bounds.margin:.0%} noise margin "
            f"({chosen.rps:,.0f} req/s, p99 {chosen.p99_ms:.0f} ms{_runs(chosen)}) with "
            f"{because}: the pick."
        )
    return chosen, why
