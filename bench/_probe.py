"""CPU seconds and peak memory of the platform's tiers, from /proc.

A tier is a set of root processes (e.g. the Prefect server) with everything below them, or, for
PostgreSQL, the backends connected to the platform's database. The CPU of a tree is measured as
``utime + stime + cutime + cstime`` of its live members, so children that exit during the run
(flow-run processes) are counted through their parent's ``cutime`` once reaped, and never twice.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def cpu_seconds(pid: int, *, children: bool = True) -> float | None:
    """CPU time of a process (and of its reaped children), in seconds."""
    stat = _stat(pid)
    if stat is None:
        return None
    fields = stat[11:15] if children else stat[11:13]
    return sum(int(x) for x in fields) / TICKS


def rss_bytes(pid: int) -> int:
    """Resident memory of a process."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def descendants(roots: Iterable[int]) -> set[int]:
    """The roots and every live process below them."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                children.setdefault(int(stat[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [r for r in roots if _stat(r) is not None]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


@dataclasses.dataclass
class Tier:
    """One tier's processes and what they used."""

    name: str
    pids: Callable[[], set[int]]
    tree: bool = True  # False: independent processes (PostgreSQL backends), summed as last seen
    start: float = 0.0
    last: dict[int, float] = dataclasses.field(default_factory=dict)
    peak_rss: int = 0

    def sample(self) -> None:
        pids = self.pids()
        rss = 0
        seen: dict[int, float] = {}
        for pid in pids:
            cpu = cpu_seconds(pid, children=self.tree)
            if cpu is not None:
                seen[pid] = cpu
                rss += rss_bytes(pid)
        if self.tree:
            self.last = seen  # exited members are now in their parent's cutime
        else:
            self.last.update(seen)  # an exited backend keeps its last sample (≤ 1 s short)
        self.peak_rss = max(self.peak_rss, rss)

    def begin(self) -> None:
        self.last = {}
        self.peak_rss = 0
        self.sample()
        self.start = sum(self.last.values())

    @property
    def cpu(self) -> float:
        return sum(self.last.values()) - self.start


def host_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (``/proc/stat``): what a lane
    costs including what no process tree of ours shows (the Docker engine, containers)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def calibrate(rounds: int = 5) -> float:
    """Milliseconds this machine takes for a fixed piece of Python work (the best of ``rounds``).

    CPU seconds per job compare between runs only on equally fast CPUs, and a shared VM's speed
    drifts (see docs/performance.md): reports carry this figure so two runs can be told apart.
    """
    payload = [{"id": str(i), "state": "COMPLETED", "n": i * 1.5} for i in range(200)]
    numbers = [float(i * 7919 % 200) for i in range(200)]
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(50):
            json.loads(json.dumps(payload))
            sorted(numbers, key=lambda n: -n)
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)
