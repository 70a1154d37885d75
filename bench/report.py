"""Figures, ratios, tables and machine facts shared by every benchmark script.

A benchmark prints :class:`Figure` rows; comparisons are always made with :func:`ratio`
against a baseline from the same run, never against numbers from another day.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Figure:
    """One measured number. ``higher_is_better`` tells how to read a ratio against it."""

    name: str
    value: float
    unit: str
    higher_is_better: bool = True
    # Spread over repeats (min, max), so a reader can judge the noise next to the value.
    spread: tuple[float, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def ratio(candidate: Figure, baseline: Figure) -> float:
    """candidate / baseline, flipped for lower-is-better figures so > 1 always means faster."""
    if candidate.unit != baseline.unit:
        raise ValueError(f"unit mismatch: {candidate.unit} vs {baseline.unit}")
    if candidate.higher_is_better:
        return candidate.value / baseline.value if baseline.value else float("inf")
    return baseline.value / candidate.value if candidate.value else float("inf")


def median_figure(
    name: str, values: Sequence[float], unit: str, *, higher_is_better: bool = True
) -> Figure:
    """The median of repeats, keeping min/max as the visible noise band."""
    return Figure(
        name,
        statistics.median(values),
        unit,
        higher_is_better,
        (min(values), max(values)) if len(values) > 1 else None,
    )


def machine_info() -> dict[str, Any]:
    """What a figure needs next to it to be interpreted: cores, load, versions."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load1, load5, _ = os.getloadavg()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "loadavg_1m": round(load1, 2),
        "loadavg_5m": round(load5, 2),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_table(rows: Iterable[Sequence[str]], header: Sequence[str]) -> str:
    rows = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def figures_table(figures: Sequence[Figure], baseline: Mapping[str, Figure] | None = None) -> str:
    """A table of figures; with ``baseline`` (name -> Figure) adds a ratio column."""
    header = ["figure", "value", "unit", "min..max"]
    if baseline is not None:
        header.append("ratio")
    rows = []
    for f in figures:
        spread = f"{_fmt(f.spread[0])}..{_fmt(f.spread[1])}" if f.spread else ""
        row = [f.name, _fmt(f.value), f.unit, spread]
        if baseline is not None:
            base = baseline.get(f.name)
            row.append(f"{ratio(f, base):.2f}x" if base else "")
        rows.append(row)
    return format_table(rows, header)


def to_jsonable(figures: Sequence[Figure], **context: Any) -> dict[str, Any]:
    return {"machine": machine_info(), **context, "figures": [asdict(f) for f in figures]}


def emit(
    figures: Sequence[Figure],
    *,
    as_json: bool,
    title: str,
    save_as: str | None = None,
    **context: Any,
) -> None:
    """Print figures as a table or JSON; optionally keep a copy under bench/results/."""
    doc = to_jsonable(figures, title=title, **context)
    if save_as:
        RESULTS_DIR.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        (RESULTS_DIR / f"{stamp}-{save_as}.json").write_text(json.dumps(doc, indent=2))
    if as_json:
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    m = doc["machine"]
    print(f"# {title}")
    print(f"# {m['cpus']} cpus ({m['cpu_model']}), load {m['loadavg_1m']}, python {m['python']}")
    print(figures_table(figures))
