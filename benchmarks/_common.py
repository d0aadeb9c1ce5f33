"""Tiny shared helpers for the benchmark scripts: timing medians, a Markdown table, JSON out."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def median_seconds(
    fn: Callable[[], Any], repeats: int, *, setup: Callable[[], Any] | None = None
) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs (``setup()`` runs untimed before each)."""
    times = []
    for _ in range(max(1, repeats)):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def markdown_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """Render ``rows`` (dicts) as a Markdown table with the given column order."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: str | None, payload: Any) -> None:
    """Write ``payload`` as indented JSON to ``path`` (no-op when ``path`` is falsy)."""
    if path:
        Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")
