"""CPU time and memory of processes, read from C{/proc} (Linux), and the open-files limit."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")

#: The open-files limit the benchmark asks for (the driver, the load generators, the server).
WANTED_NOFILE = 262_144


def raiseOpenFilesLimit(wanted: int = WANTED_NOFILE) -> int:
    """
    Raise C{RLIMIT_NOFILE} of this process as far as allowed (the hard limit too, when we may:
    root), up to C{wanted}.  Children inherit it.

    @return: the soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        with open("/proc/sys/fs/nr_open") as f:
            ceiling = int(f.read())
    except OSError:
        ceiling = wanted
    target = min(wanted, ceiling)
    if hard != resource.RLIM_INFINITY and hard < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, target))
            return target
        except (ValueError, OSError):
            target = hard
    newSoft = target if hard == resource.RLIM_INFINITY else min(target, hard)
    if newSoft > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (newSoft, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def openFilesLimit() -> int:
    """The soft C{RLIMIT_NOFILE} of this process."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass(frozen=True)
class ProcSample:
    """CPU seconds (user + system) and resident memory (bytes) of a process at one moment."""

    cpu: float
    rss: int


def sample(pid: int) -> ProcSample:
    """
    CPU seconds and RSS of C{pid} now.

    @raise OSError: no such process.
    """
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # the command name may hold spaces: fields start after the last ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    rssPages = int(fields[21])
    return ProcSample(cpu=(utime + stime) / _TICKS, rss=rssPages * _PAGE)


def children(pid: int) -> list[int]:
    """The direct children of C{pid} (C{/proc/PID/task/*/children})."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.extend(int(p) for p in f.read().split())
        except OSError:
            continue
    return found


def treeCPU(pid: int) -> float:
    """CPU seconds of C{pid} and its direct children still alive (e.g. a postmaster)."""
    total = 0.0
    for p in [pid, *children(pid)]:
        try:
            total += sample(p).cpu
        except (OSError, ValueError):
            continue
    return total


def descendants(pid: int) -> list[int]:
    """Every process below C{pid} (children, their children, ...), alive now."""
    found: list[int] = []
    todo = children(pid)
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children(p))
    return found


def treeSample(pid: int) -> ProcSample:
    """
    CPU seconds and RSS of C{pid} and every process below it (with C{--workers}: the parent
    and its workers).  Processes that exit meanwhile are left out.

    @raise OSError: no process C{pid}.
    """
    top = sample(pid)
    cpu, rss = top.cpu, top.rss
    for p in descendants(pid):
        try:
            s = sample(p)
        except (OSError, ValueError, IndexError):
            continue
        cpu += s.cpu
        rss += s.rss
    return ProcSample(cpu=cpu, rss=rss)


def machine() -> dict[str, str]:
    """What the report says about the machine: CPU model, cores, memory, kernel."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["cores"] = str(os.cpu_count() or 0)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["memory"] = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                    break
    except OSError:
        pass
    uname = os.uname()
    info["kernel"] = f"{uname.sysname} {uname.release} {uname.machine}"
    return info


def loadAverage() -> str:
    """The 1, 5 and 15 minute load averages, as text."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


__all__ = [
    "ProcSample",
    "WANTED_NOFILE",
    "children",
    "descendants",
    "loadAverage",
    "machine",
    "openFilesLimit",
    "raiseOpenFilesLimit",
    "sample",
    "treeCPU",
    "treeSample",
]


def machineCPU() -> float:
    """CPU seconds spent by the whole machine (every core, every process) since boot."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    # user nice system idle iowait irq softirq steal ...
    values = [int(v) for v in fields[:8]]
    busy = values[0] + values[1] + values[2] + values[5] + values[6] + values[7]
    return busy / _TICKS


def selfCPU() -> float:
    """CPU seconds of this process."""
    t = os.times()
    return t.user + t.system
