"""Percentiles and summaries of repeated runs (pure functions, no I/O)."""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], p: float) -> float:
    """
    The C{p}-th percentile (0-100) of C{values}, linear interpolation between closest ranks
    (numpy's default).  C{nan} for an empty sequence.
    """
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, not {p}")
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    fraction = rank - low
    return float(ordered[low] + (ordered[high] - ordered[low]) * fraction)


@dataclass(frozen=True)
class Summary:
    """The median of several runs' values, with their minimum and maximum."""

    median: float
    low: float
    high: float
    runs: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Summary:
        """Summarise the values (C{nan}s, from failed runs, are left out)."""
        kept = [float(v) for v in values if v is not None and not math.isnan(float(v))]
        if not kept:
            return cls(math.nan, math.nan, math.nan, 0)
        return cls(statistics.median(kept), min(kept), max(kept), len(kept))

    def format(self, digits: int = 0, unit: str = "") -> str:
        """C{"median (min–max)"}; just the value for a single run; C{"n/a"} for none."""
        if self.runs == 0:
            return "n/a"
        suffix = f" {unit}" if unit else ""
        if self.runs == 1 or self.low == self.high:
            return f"{formatNumber(self.median, digits)}{suffix}"
        return (
            f"{formatNumber(self.median, digits)}{suffix} "
            f"({formatNumber(self.low, digits)}–{formatNumber(self.high, digits)})"
        )


def formatNumber(value: float, digits: int = 0) -> str:
    """A number with thousands separated by a thin space (C{51 234}), C{digits} decimals."""
    if math.isnan(value):
        return "n/a"
    text = f"{value:,.{digits}f}"
    return text.replace(",", "\u202f")


def rate(count: float, seconds: float) -> float:
    """C{count / seconds}, C{nan} when no time passed."""
    return count / seconds if seconds > 0 else math.nan


def mostAtCost(count: float, cpuSeconds: float) -> float:
    """
    The most of C{count} things per second this machine's cores could do if each cost what
    C{count} of them cost in C{cpuSeconds} of CPU (every core busy with them and nothing else);
    C{nan} when nothing was done or nothing spent.
    """
    if count <= 0 or cpuSeconds <= 0:
        return math.nan
    return (os.cpu_count() or 1) * count / cpuSeconds


__all__ = ["Summary", "formatNumber", "mostAtCost", "percentile", "rate"]
