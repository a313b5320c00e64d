"""What every benchmark writes: a printed table, a JSON file and PNG plots in one results folder.

The folder is ``load_tests/results/`` unless ``AVAIL_BENCH_RESULTS`` names another one.
Plots use matplotlib's Agg backend, so no display is needed.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

RESULTS = Path(os.environ.get("AVAIL_BENCH_RESULTS", Path(__file__).parent / "results"))


def machine() -> dict[str, Any]:
    """The facts a reader needs to compare numbers across machines."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1) of unsorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return ordered[rank]


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table, so the printed output can be pasted into docs/performance.md."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            digits = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0  # noqa: PLR2004
            return f"{value:,.{digits}f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def save(name: str, result: Mapping[str, Any], columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """Prints the table and writes ``<name>.json`` (result plus machine facts); returns the path."""
    print(table(columns, rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {"benchmark": name, "machine": machine(), **result, "table": {"columns": list(columns),
                                                                              "rows": [list(r) for r in rows]}}
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    print(f"wrote {path}")
    return path


def _pyplot() -> Any:
    import matplotlib  # noqa: PLC0415 - only benchmarks that plot need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def bars(name: str, title: str, groups: Sequence[str], series: Mapping[str, Sequence[float]], ylabel: str,
         target: float | None = None) -> Path:
    """Grouped bars: one group per label in ``groups``, one bar per series (e.g. engine, baseline)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / max(1, len(series))
    for index, (label, values) in enumerate(series.items()):
        xs = [g + index * width - 0.4 + width / 2 for g in range(len(groups))]
        drawn = ax.bar(xs, values, width, label=label)
        ax.bar_label(drawn, fmt="{:,.0f}", fontsize=8)
    if target is not None:
        ax.axhline(target, color="red", linestyle="--", linewidth=1, label=f"target {target:,.0f}")
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return _finish(plt, fig, name)


def lines(name: str, title: str, series: Mapping[str, tuple[Sequence[float], Sequence[float]]], xlabel: str,
          ylabel: str, target: float | None = None, log_y: bool = False) -> Path:
    """One line per series of (xs, ys)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, label=label, marker="." if len(xs) < 50 else None)  # noqa: PLR2004
    if target is not None:
        ax.axhline(target, color="red", linestyle="--", linewidth=1, label=f"target {target:,}")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _finish(plt, fig, name)


def cdf(name: str, title: str, samples: Mapping[str, Sequence[float]], xlabel: str,
        target: float | None = None) -> Path:
    """Cumulative distribution of each sample set (latencies), with the p99 readable on the y axis."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, values in samples.items():
        ordered = sorted(values)
        if ordered:
            ax.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=label)
    if target is not None:
        ax.axvline(target, color="red", linestyle="--", linewidth=1, label=f"target {target:,}")
    ax.axhline(0.99, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of samples ≤ x")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _finish(plt, fig, name)


def _finish(plt: Any, fig: Any, name: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")
    return path
