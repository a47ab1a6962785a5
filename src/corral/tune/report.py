"""The report: Markdown, CSV, HTML (with the plot) and the raw measurements as JSON."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from corral.tune.model import Measurement
from corral.tune.search import Bounds, Step, limit_hint, profile_text

COLUMNS = (
    "run",
    "worker",
    "workers",
    "threads",
    "req/s",
    "p50 ms",
    "p99 ms",
    "CPU ms/req",
    "busiest worker (cores)",
    "server (cores)",
    "waited for CPU",
    "load gen (cores)",
    "host busy",
    "others (cores)",
    "memory MiB",
    "worker RSS MiB",
    "pool threads",
    "failed",
    "seconds",
)


@dataclass
class Run:
    """Everything one tuning run knows, for the report and measurements.json."""

    app: str
    command: list[str]
    started: str
    cpus: int
    interface: str
    bounds: Bounds
    connections: int
    processes: int
    warmup_s: float
    window_s: float
    requests: list[str]
    memory_limit: int | None
    memory_source: str
    probe: Measurement
    steps: list[Step] = field(default_factory=list)
    history: list[Measurement] = field(default_factory=list)
    pick: Measurement | None = None
    pick_reason: str = ""
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        """measurements.json."""
        data = {k: v for k, v in vars(self).items() if k not in ("probe", "history", "pick")}
        data["bounds"] = asdict(self.bounds)
        data["steps"] = [
            {
                "cell": s.cell and asdict(s.cell),
                "reason": s.reason,
                "window_share": s.window_share,
                "paired": s.paired,
            }
            for s in self.steps
        ]
        data["probe"] = self.probe.as_dict()
        data["history"] = [m.as_dict() for m in self.history]
        data["pick"] = self.pick.as_dict() if self.pick else None
        return data


def row(index: int, m: Measurement) -> list[str]:
    """One line of the table (and of the CSV)."""
    if m.failure:
        return (
            [str(index), m.cell.kind, str(m.cell.workers), str(m.cell.threads)]
            + ["-"] * (len(COLUMNS) - 5)
            + [f"{m.seconds:.1f}"]
        )
    failed = m.errors + m.bad_status
    return [
        str(index),
        m.cell.kind,
        str(m.cell.workers),
        str(m.cell.threads),
        f"{m.rps:.0f}",
        f"{m.p50_ms:.1f}",
        f"{m.p99_ms:.1f}",
        f"{m.cpu_ms:.2f}",
        f"{m.worker_cores:.2f}",
        f"{m.server_cores:.2f}",
        f"{m.runq_share:.0%}",
        f"{m.generator_cores:.2f}",
        f"{m.host_busy:.0%}",
        f"{m.others_cores:.1f}",
        f"{m.memory_mib:.0f}",
        f"{m.worker_rss_mib:.0f}",
        str(m.pool_threads or "-"),
        str(failed),
        f"{m.seconds:.1f}",
    ]


def to_csv(run: Run) -> str:
    """results.csv: one row per measured configuration (the probe first, as run 0)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerow(row(0, run.probe))
    for index, m in enumerate(run.history, 1):
        writer.writerow(row(index, m))
    return out.getvalue()


Block = tuple[str, Any]  # ("h2" | "p" | "ol" | "ul" | "table" | "img", content)

GLOSSARY = (
    "req/s: answers per second over the measured window, at a fixed number of clients each "
    "sending its next request as soon as the last is answered (a closed loop).",
    "p50/p99 ms: latency percentiles seen by the clients, queueing included.",
    "CPU ms/req: the server's CPU time (master and workers, every thread, from "
    "/proc/PID/task/*/schedstat) divided by the answers.",
    "busiest worker (cores): CPU seconds per second of the busiest worker. Near 1.00 with "
    "several threads, its threads queue for the GIL.",
    "waited for CPU: of the server threads' runnable time, the share spent waiting for a "
    "core (run-queue wait): the CPUs were full, with our load or another's.",
    "load gen (cores): the busiest load generator process; near 1.00 it may be the limit.",
    "host busy: the whole machine's CPUs, every process counted (/proc/stat); others (cores): "
    "what processes other than the server and the load generator kept busy. When it moves "
    "between two runs, their comparison is noisy (the reasons say so).",
    "memory MiB: PSS of master and workers (shared pages split between the processes "
    "sharing them); worker RSS MiB: the largest worker's resident memory.",
    "pool threads: the threads the busiest threaded worker had started; the pool grows "
    "only while every thread waits, so it can stay below `threads`.",
)


def _confirm_window(run: Run) -> str:
    """How long the runs measuring the two fastest again, back to back, were, when there were
    any."""
    shorter = [s for s in run.steps if s.cell is not None and s.window_share < 1.0]
    if not shorter:
        return ""
    return (
        f" ({shorter[0].window_s(run.window_s):g} s each for the two fastest measured again, "
        "back to back)"
    )


def _machine_notes(run: Run) -> list[str]:
    good = [m for m in run.history if not m.failure and m.responses]
    notes = [
        f"Machine: {run.cpus} usable CPUs; memory limit "
        + (
            f"{run.memory_limit / 2**20:,.0f} MiB ({run.memory_source})"
            if run.memory_limit
            else "unknown"
        )
        + (
            f", of which the pick may use {run.bounds.memory_budget_mib:,.0f} MiB"
            if run.bounds.memory_budget_mib
            else ""
        )
        + ".",
        f"Load: {run.connections} clients at once from {run.processes} load generator "
        f"process(es); requests: {', '.join(run.requests[:5])}"
        + (" ..." if len(run.requests) > 5 else "")
        + f". Each run: {run.warmup_s:g} s warm-up, then {run.window_s:g} s measured"
        + _confirm_window(run)
        + ".",
        f"Search: a gain under {run.bounds.margin:.0%} counts as noise; p99 may rise "
        f"{run.bounds.p99_margin:.0%} before it counts as climbing; at most "
        f"{run.bounds.max_runs} runs, {run.bounds.max_workers} workers, "
        f"{run.bounds.max_threads} threads. Took {run.seconds:.0f} s.",
    ]
    if good:
        cost = sorted(m.generator_us for m in good)[len(good) // 2]
        notes.append(
            f"The load generator spent {cost:.0f} µs of CPU per request (median over the "
            f"runs): one process drives at most about {1e6 / max(cost, 1):,.0f} req/s."
        )
        bound = [m.cell.label() for m in good if m.generator_cores >= 0.85]
        if bound:
            notes.append(
                "Warning: a load generator process was nearly a full core busy in "
                f"{', '.join(bound)}: it may have been the limit there (raise --load-processes)."
            )
        others = max(m.others_cores for m in good)
        if others > 0.2 * run.cpus:
            notes.append(
                f"Warning: other processes kept up to {others:.1f} CPUs busy during a run; "
                "the numbers are noisier than on a quiet machine."
            )
    return notes


def blocks(run: Run, plot_name: str) -> list[Block]:
    """The report's content, rendered to Markdown and HTML alike."""
    out: list[Block] = [("h1", f"corral tune: {run.app}")]
    if run.pick is not None:
        p = run.pick
        out.append(
            (
                "p",
                f"**Pick: {p.cell.label()}** ({p.rps:,.0f} req/s, p99 {p.p99_ms:.0f} ms, "
                f"{p.memory_mib:.0f} MiB). Run it with `corral -c corral.conf.py {run.app}` "
                "(the file is beside this report).",
            )
        )
    out.append(("p", run.pick_reason))
    out += [("h2", "The app alone"), ("p", profile_text(run.probe))]
    items = [(f"**{s.cell.label()}**: " if s.cell else "**end**: ") + s.reason for s in run.steps]
    out += [("h2", "How the search went"), ("ol", items), ("img", plot_name)]
    rows = [row(0, run.probe)] + [row(i, m) for i, m in enumerate(run.history, 1)]
    out += [
        ("h2", "Every configuration measured"),
        ("p", "Run 0 is the app alone."),
        ("table", rows),
    ]
    hints = [
        f"{m.cell.label()}:{limit_hint(m, run.cpus)}"
        for m in run.history
        if not m.failure and limit_hint(m, run.cpus)
    ]
    hints += [f"{m.cell.label()}: failed: {m.failure}" for m in run.history if m.failure]
    if hints:
        out += [("h2", "What held configurations back"), ("ul", hints)]
    out += [("h2", "How this was measured"), ("ul", _machine_notes(run))]
    out += [("h2", "Columns"), ("ul", list(GLOSSARY))]
    return out


def markdown(content: list[Block]) -> str:
    """The blocks as Markdown."""
    lines: list[str] = []
    for kind, value in content:
        if kind == "h1":
            lines += [f"# {value}", ""]
        elif kind == "h2":
            lines += [f"## {value}", ""]
        elif kind == "p":
            lines += [str(value), ""]
        elif kind in ("ol", "ul"):
            lines += [f"{i}. {t}" if kind == "ol" else f"- {t}" for i, t in enumerate(value, 1)]
            lines.append("")
        elif kind == "img":
            lines += [f"![throughput and p99 against threads]({value})", ""]
        elif kind == "table":
            lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
            lines += ["| " + " | ".join(r) + " |" for r in value]
            lines.append("")
    return "\n".join(lines)


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def to_html(content: list[Block], svg: str, title: str) -> str:
    """The blocks as one HTML page, the plot inline."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;max-width:"
        "1100px;margin:2em auto;line-height:1.4}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}code{background:#f4f4f4}"
        "</style></head><body>",
    ]
    for kind, value in content:
        if kind in ("h1", "h2", "p"):
            parts.append(f"<{kind}>{_inline(str(value))}</{kind}>")
        elif kind in ("ol", "ul"):
            items = "".join(f"<li>{_inline(t)}</li>" for t in value)
            parts.append(f"<{kind}>{items}</{kind}>")
        elif kind == "img":
            parts.append(f"<figure>{svg}</figure>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in value
            )
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write(run: Run, out: Path, svg: str) -> dict[str, Path]:
    """Write report.md, report.html, results.csv, plot.svg and measurements.json into `out`."""
    paths = {
        "markdown": out / "report.md",
        "html": out / "report.html",
        "csv": out / "results.csv",
        "plot": out / "plot.svg",
        "json": out / "measurements.json",
    }
    content = blocks(run, paths["plot"].name)
    paths["markdown"].write_text(markdown(content))
    paths["html"].write_text(to_html(content, svg, f"corral tune: {run.app}"))
    paths["csv"].write_text(to_csv(run))
    paths["plot"].write_text(svg)
    paths["json"].write_text(json.dumps(run.as_json(), indent=1) + "\n")
    return paths
