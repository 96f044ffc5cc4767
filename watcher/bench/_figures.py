"""Figures (one row of the report), statistics and the markdown table."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Figure:
    key: str  # P1..P7
    name: str
    value: str
    target: str
    anchor: str
    met: bool | None  # None: no target, or not measured
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def unavailable(key: str, name: str, target: str, why: str) -> Figure:
    return Figure(key, name, "not available", target, why, None, {"error": why})


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): an observed value, never an interpolation."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float | int]:
    if not seconds:
        return {"n": 0}
    return {
        "n": len(seconds),
        "p50_ms": round(percentile(seconds, 50) * 1e3, 2),
        "p95_ms": round(percentile(seconds, 95) * 1e3, 2),
        "p99_ms": round(percentile(seconds, 99) * 1e3, 2),
        "min_ms": round(min(seconds) * 1e3, 2),
        "max_ms": round(max(seconds) * 1e3, 2),
    }


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "n/a"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"


def p50_p99(stats: dict[str, Any]) -> str:
    if not stats.get("n"):
        return "no samples"
    return f"p50 {fmt_ms(stats['p50_ms'])}, p99 {fmt_ms(stats['p99_ms'])} (n={stats['n']})"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(figures: Iterable[Figure]) -> str:
    rows = ["| figure | value | target | anchor | met? |", "|---|---|---|---|---|"]
    for f in figures:
        met = {True: "yes", False: "**no**", None: "—"}[f.met]
        rows.append(
            f"| {_cell(f.key + ' ' + f.name)} | {_cell(f.value)} | {_cell(f.target)} "
            f"| {_cell(f.anchor)} | {met} |"
        )
    return "\n".join(rows)


# -- Prometheus histogram deltas -----------------------------------------------------------------
def histogram(text: str, name: str) -> dict[str, Any]:
    """Buckets ({le: cumulative count}), sum and count of histogram `name` in exposition text."""
    buckets: dict[float, float] = {}
    out: dict[str, Any] = {"buckets": buckets, "sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[math.inf if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(name + "_sum "):
            out["sum"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(name + "_count "):
            out["count"] = float(line.rsplit(" ", 1)[1])
    return out


def histogram_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What was observed between two scrapes: count, mean and bucket-bound p50/p99 (ms)."""
    count = after["count"] - before["count"]
    if count <= 0:
        return {"count": 0}
    buckets = {le: n - before["buckets"].get(le, 0.0) for le, n in after["buckets"].items()}

    def bound(q: float) -> float | None:
        for le in sorted(buckets):
            if buckets[le] >= q * count:
                return None if math.isinf(le) else le * 1e3
        return None

    return {
        "count": int(count),
        "mean_ms": round((after["sum"] - before["sum"]) / count * 1e3, 2),
        "p50_le_ms": bound(0.5),
        "p99_le_ms": bound(0.99),
    }


def fmt_hist(h: dict[str, Any]) -> str:
    if not h.get("count"):
        return "daemon histogram: no observations"
    p99 = h.get("p99_le_ms")
    return f"daemon histogram: mean {fmt_ms(h['mean_ms'])}, p99 ≤ {fmt_ms(p99) if p99 else '+Inf'}"
