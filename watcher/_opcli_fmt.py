"""Output helpers of the operator CLI: plain tables and key/value blocks."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO


def cell(value: Any) -> str:
    if value is None or value in ("", []):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    text = [[cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
    for row in [list(headers), *text]:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=out)
    if not text:
        print("(none)", file=out)


def fields(pairs: Sequence[tuple[str, Any]], out: TextIO | None = None) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        print(f"{key + ':':<{width + 1}} {cell(value)}", file=out or sys.stdout)


def dump_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def since(timestamp: Any) -> str:
    """'2026-01-01T10:00:00Z' -> '2026-01-01 10:00:00 (3m ago)'; anything else unchanged."""
    if not isinstance(timestamp, str) or not timestamp:
        return cell(timestamp)
    try:
        when = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    age = int((datetime.now(UTC) - when).total_seconds())
    if age < 0:
        ago = "just now"
    elif age < 120:
        ago = f"{age}s ago"
    elif age < 7200:
        ago = f"{age // 60}m ago"
    elif age < 172800:
        ago = f"{age // 3600}h ago"
    else:
        ago = f"{age // 86400}d ago"
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M:%S} ({ago})"
