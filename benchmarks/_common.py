"""Helpers shared by the benchmarks: timing and a side-by-side table of medians and ratios."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from rich.console import Console
from rich.table import Table


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def print_ratios(title: str, rows: dict[str, dict[str, float]], baseline: str) -> None:
    """rows: case -> {column -> seconds}; prints each column's median and its ratio to ``baseline``."""
    table = Table(title=title)
    table.add_column("case")
    columns = list(next(iter(rows.values())))
    for col in columns:
        table.add_column(f"{col} (ms)", justify="right")
        if col != baseline:
            table.add_column(f"{col}/{baseline}", justify="right")
    for case, cols in rows.items():
        cells = [case]
        for col in columns:
            cells.append(f"{cols[col] * 1000:.1f}")
            if col != baseline:
                cells.append(f"{cols[col] / cols[baseline]:.2f}x")
        table.add_row(*cells)
    Console(width=140).print(table)
