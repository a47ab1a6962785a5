"""The pick from the measurements: each configuration's runs combined, the fastest within the
noise margin, then the lower p99 and the fewer processes and threads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from statistics import fmean
from typing import TYPE_CHECKING

from corral.tune.model import Cell, Measurement

if TYPE_CHECKING:
    from corral.tune.search import Bounds

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


def pick(history: Sequence[Measurement], bounds: Bounds) -> tuple[Measurement | None, str]:
    """The configuration to run and why: the fastest (each configuration's runs averaged),
    unless others are as fast within the noise margin; among those, the lower p99 (by more than
    a fifth), then the fewest processes x threads.

    When two or more configurations were measured more than once, the pick is one of those: a
    configuration measured once and left unconfirmed would win on a lucky run (on io, 2x128 once
    at 10,192 req/s beat 3x128 and 4x128 averaged over two runs, and was 0.72 of the grid's best
    in turns). The search's confirmation now measures only the leader again (search._confirm),
    so this applies to histories with more repeats (an older search's, or one put together).
    """
    ok = eligible(combine(history), bounds)
    if not ok:
        return None, "No configuration answered without failures."
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
