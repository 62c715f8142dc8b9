"""
Where the server's time goes: summaries of C{py-spy record --format raw} output (collapsed
stacks, one C{frame;frame;... count} per line).  Pure functions apart from reading the file.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def frameName(frame: str, withLine: bool = False) -> str:
    """C{"func (path/to/file.py:12)"} -> C{"func (file.py)"} (C{package/file.py} for ours)."""
    m = _FRAME.match(frame.strip())
    if m is None:
        return frame.strip()
    path = m.group("file")
    for marker in ("/site-packages/", "/work/main/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    if path.startswith(".") and "/" in path:
        path = path.split("/", 1)[1]
    line = f":{m.group('line')}" if withLine and m.group("line") else ""
    return f"{m.group('func')} ({path}{line})"


@dataclass(frozen=True)
class ProfileSummary:
    """Samples in total, and the heaviest functions by self and by inclusive samples."""

    samples: int
    idle: int
    selfTime: list[tuple[str, int]]
    inclusive: list[tuple[str, int]]

    def busy(self) -> int:
        return self.samples - self.idle


#: Leaf frames that mean the reactor is waiting for I/O (idle, not CPU).
_IDLE_LEAVES = ("poll (", "epoll", "select (", "doPoll (")


def summarise(lines: list[str], top: int = 15) -> ProfileSummary:
    """Aggregate collapsed stacks."""
    selfCounts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    idle = 0
    for raw in lines:
        raw = raw.rstrip("\n")
        if not raw or " " not in raw:
            continue
        stack, _, count = raw.rpartition(" ")
        try:
            n = int(count)
        except ValueError:
            continue
        frames = [frameName(f) for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        total += n
        leaf = frames[-1]
        if any(leaf.startswith(p) or p in leaf for p in _IDLE_LEAVES):
            idle += n
            continue
        selfCounts[leaf] += n
        for name in set(frames):
            inclusive[name] += n
    return ProfileSummary(total, idle, selfCounts.most_common(top), inclusive.most_common(top * 3))


def summariseFile(path: str, top: int = 15) -> ProfileSummary | None:
    try:
        with open(path, errors="replace") as f:
            return summarise(f.readlines(), top)
    except OSError:
        return None


def renderSummary(summary: ProfileSummary, inclusiveFilter: str = "tm20/") -> str:
    """Markdown: the self-time table and the heaviest of our own functions (inclusive)."""
    busy = max(summary.busy(), 1)
    out = [
        f"{summary.samples} samples, {100.0 * summary.idle / max(summary.samples, 1):.0f}% idle"
        " (waiting in the reactor's poll).",
        "",
        "| self | function |",
        "|---:|---|",
    ]
    for name, n in summary.selfTime:
        out.append(f"| {100.0 * n / busy:.1f}% | `{name}` |")
    ours = [(n, c) for n, c in summary.inclusive if inclusiveFilter in n][:12]
    if ours:
        out += ["", "| inclusive | our function |", "|---:|---|"]
        for name, n in ours:
            out.append(f"| {100.0 * n / busy:.1f}% | `{name}` |")
    return "\n".join(out)


__all__ = ["ProfileSummary", "frameName", "renderSummary", "summarise", "summariseFile"]
