"""The report's plot as SVG, by our own small code: no plotting library needed."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from corral.tune.choose import combine
from corral.tune.model import Cell, Measurement

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
WIDTH, CHART_HEIGHT = 760, 260
_Scale = Callable[[float], float]
LEFT, RIGHT, TOP, BOTTOM = 70, 150, 34, 44


@dataclass(frozen=True)
class Series:
    """One line: a name and its points (x, y); `picked` marks the chosen configuration's x."""

    name: str
    points: tuple[tuple[float, float], ...]
    picked: float | None = None


def nice_ceiling(value: float) -> float:
    """A round number (1, 2, 2.5 or 5 times a power of ten) at or above `value`."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)


def _x_scale(xs: Sequence[float], log: bool) -> tuple[float, float]:
    low, high = min(xs), max(xs)
    if log:
        low, high = math.log2(low), math.log2(high)
    if high == low:
        low, high = low - 1, high + 1
    return low, high


def _y_scale(ys: Sequence[float], log: bool) -> tuple[_Scale, list[float]]:
    """Where a value sits (0 bottom .. 1 top) and the grid lines' values: linear from 0 to a
    round number, or decades (for p99, which spans 10 ms to seconds)."""
    positive = [y for y in ys if y > 0] or [1.0]
    if log:
        low = math.floor(math.log10(min(positive)))
        high = max(low + 1, math.ceil(math.log10(max(positive))))
        ticks = [10.0**k for k in range(low, high + 1)]
        return (lambda y: (math.log10(max(y, 10.0**low)) - low) / (high - low)), ticks
    top = nice_ceiling(max(positive))
    return (lambda y: y / top), [top * i / 5 for i in range(6)]


def chart(
    title: str,
    x_label: str,
    y_label: str,
    series: Sequence[Series],
    log_x: bool,
    log_y: bool = False,
) -> str:
    """One line chart as an SVG <g> of height CHART_HEIGHT (axes, grid, lines, legend)."""
    xs = [x for s in series for x, _ in s.points] or [1.0]
    low, high = _x_scale(xs, log_x)
    where, ticks = _y_scale([y for s in series for _, y in s.points], log_y)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, CHART_HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        value = math.log2(x) if log_x else x
        return LEFT + (value - low) / (high - low) * plot_w

    def py(y: float) -> float:
        return TOP + plot_h - where(y) * plot_h

    parts = [f'<text x="{LEFT}" y="20" font-weight="bold">{escape(title)}</text>']
    for y in ticks:
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
            f'stroke="#ddd"/><text x="{LEFT - 6}" y="{py(y) + 4:.1f}" text-anchor="end">'
            f"{_number(y)}</text>"
        )
    for x in sorted(set(xs)):
        parts.append(
            f'<text x="{px(x):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">'
            f"{_number(x)}</text>"
        )
    parts.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>'
        f'<text x="{LEFT + plot_w / 2}" y="{CHART_HEIGHT - 8}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text transform="translate(16 {TOP + plot_h / 2}) rotate(-90)" text-anchor="middle">'
        f"{escape(y_label)}</text>"
    )
    for index, line in enumerate(series):
        parts.append(_line(line, COLORS[index % len(COLORS)], px, py, index))
    return "".join(parts)


def _line(line: Series, color: str, px: _Scale, py: _Scale, index: int) -> str:
    points = sorted(line.points)
    path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
    parts = [f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>']
    for x, y in points:
        parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{color}"/>')
        if line.picked is not None and x == line.picked:
            parts.append(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="8" fill="none" '
                f'stroke="#000" stroke-width="2"><title>the pick</title></circle>'
            )
    legend_y = TOP + 8 + index * 18
    legend_x = WIDTH - RIGHT + 14
    parts.append(
        f'<line x1="{legend_x}" x2="{legend_x + 18}" y1="{legend_y}" y2="{legend_y}" '
        f'stroke="{color}" stroke-width="3"/><text x="{legend_x + 24}" y="{legend_y + 4}">'
        f"{escape(line.name)}</text>"
    )
    return "".join(parts)


def _number(value: float) -> str:
    if value >= 10000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _latest(history: Sequence[Measurement]) -> dict[Cell, Measurement]:
    """Each cell's runs combined (averaged), the failed ones left out."""
    return {m.cell: m for m in combine(history) if not m.failure and m.responses}


def _threaded_charts(cells: dict[Cell, Measurement], picked: Cell | None) -> list[str]:
    workers = sorted({c.workers for c in cells if c.kind == "threaded"})
    rps, p99 = [], []
    for count in workers:
        row = sorted(
            (c.threads, m) for c, m in cells.items() if c.kind == "threaded" and c.workers == count
        )
        mark = (
            picked.threads
            if picked and picked.kind == "threaded" and picked.workers == count
            else None
        )
        name = f"{count} worker{'s' if count > 1 else ''}"
        rps.append(Series(name, tuple((float(t), m.rps) for t, m in row), mark))
        p99.append(Series(name, tuple((float(t), m.p99_ms) for t, m in row), mark))
    x_label = "threads per worker (log scale)"
    return [
        chart(
            "Throughput against threads, one line per worker count",
            x_label,
            "requests/s",
            rps,
            True,
        ),
        chart("p99 latency against threads", x_label, "p99 (ms, log scale)", p99, True, True),
    ]


def _process_charts(cells: dict[Cell, Measurement], picked: Cell | None) -> list[str]:
    kinds = sorted({c.kind for c in cells if c.kind != "threaded"})
    rps, p99 = [], []
    for kind in kinds:
        row = sorted((c.workers, m) for c, m in cells.items() if c.kind == kind)
        mark = picked.workers if picked and picked.kind == kind else None
        rps.append(Series(f"{kind} worker", tuple((float(w), m.rps) for w, m in row), mark))
        p99.append(Series(f"{kind} worker", tuple((float(w), m.p99_ms) for w, m in row), mark))
    return [
        chart("Throughput against worker processes", "workers", "requests/s", rps, False),
        chart(
            "p99 latency against worker processes",
            "workers",
            "p99 (ms, log scale)",
            p99,
            False,
            True,
        ),
    ]


def figure(history: Sequence[Measurement], picked: Cell | None, title: str = "") -> str:
    """The whole SVG: throughput and p99 against threads (threaded), and against workers for the
    sync and asyncio workers; the pick is ringed."""
    cells = _latest(history)
    charts: list[str] = []
    if any(c.kind == "threaded" for c in cells):
        charts += _threaded_charts(cells, picked)
    if any(c.kind != "threaded" for c in cells):
        charts += _process_charts(cells, picked)
    head = 30 if title else 0
    height = head + CHART_HEIGHT * max(1, len(charts))
    body = "".join(
        f'<g transform="translate(0 {head + i * CHART_HEIGHT})">{c}</g>'
        for i, c in enumerate(charts)
    )
    caption = f'<text x="{LEFT}" y="20" font-size="15">{escape(title)}</text>' if title else ""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">'
        f'<rect width="100%" height="100%" fill="#fff"/>{caption}{body}</svg>\n'
    )
