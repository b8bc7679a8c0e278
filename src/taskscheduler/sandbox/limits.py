"""A job's resource limits on the sandbox lane, and the cgroups that hold it to them.

A task may set ``memory`` and ``cpus``; the lane adds a process limit and a wall-clock limit.
Each is bounded as on the docker lane, so a task cannot ask for more than an operator allows.

The limits are enforced by cgroups (v1: one directory per controller under
``/sys/fs/cgroup/<controller>/``). The platform, as root, delegates one directory per
controller to the run user (``Cgroups.delegate``); the sandbox worker, as that user, creates a
cgroup for each sandbox, puts the sandbox in it before bubblewrap starts (so everything the job
forks is held too), writes the job's limits there at its instant and removes it when the
sandbox is gone. The kernel kills a job that uses more memory than its limit (``oom_kill``),
refuses it more processes than its limit, and throttles it to its CPU share.

Without a writable cgroup v1 hierarchy (not root, or a cgroup v2 host) a sandbox can only
lower its own resource limits: its address space is capped at the memory limit (a cruder
measure than resident memory), and CPU share and process count are not limited. The worker
says so when it starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
from pathlib import Path

POOL = "sandbox"
ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000
MIB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Bounds:
    """A limit's default and the range a task may choose from."""

    minimum: float
    default: float
    maximum: float

    def clamp(self, value: float | None) -> float:
        """``value`` (the default when unset) within the bounds."""
        return min(max(self.default if value is None else value, self.minimum), self.maximum)

    def admits(self, value: float | None) -> bool:
        return value is None or self.minimum <= value <= self.maximum


# The docker lane's bounds (``_prefect.docker_pool`` builds its pool's schema from them).
MEMORY_MB = Bounds(32, 512, 4096)
CPUS = Bounds(0.1, 1.0, 2.0)
PIDS = Bounds(32, 256, 4096)


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one job may use: memory (MiB), CPUs, processes and threads, seconds."""

    memory_mb: int
    cpus: float
    pids: int
    wall_clock: float | None

    @classmethod
    def of(
        cls,
        memory_mb: int | None,
        cpus: float | None,
        timeout: float | None,
        wall_clock_limit: float | None,
    ) -> Limits:
        """A task's limits, within the bounds; its timeout capped by the lane's wall clock."""
        bounded = [t for t in (timeout, wall_clock_limit) if t is not None]
        return cls(
            memory_mb=int(MEMORY_MB.clamp(memory_mb)),
            cpus=CPUS.clamp(cpus),
            pids=int(PIDS.default),
            wall_clock=min(bounded) if bounded else None,
        )

    def rlimits(self) -> dict[str, int]:
        """What a sandbox without cgroups lowers in itself: its address space."""
        return {"RLIMIT_AS": self.memory_mb * MIB}

    def describe(self) -> str:
        clock = f", {self.wall_clock:g} s" if self.wall_clock is not None else ""
        return f"{self.memory_mb} MiB, {self.cpus:g} CPU, {self.pids} processes{clock}"


class Cgroups:
    """The cgroup directories (one per controller) delegated to the sandbox worker."""

    def __init__(self, name: str, root: Path = ROOT) -> None:
        self.name = name
        self.dirs = {c: root / c / name for c in CONTROLLERS}

    @classmethod
    def delegate(cls, name: str, uid: int, gid: int, root: Path = ROOT) -> Cgroups | None:
        """Create the directories and give them to ``uid`` (needs root and cgroup v1); None
        when that cannot be done here."""
        if os.geteuid() != 0 or not all((root / c).is_dir() for c in CONTROLLERS):
            return None
        cgroups = cls(name, root)
        try:
            for directory in cgroups.dirs.values():
                directory.mkdir(exist_ok=True)
                # The directory, and the files that let its owner move processes into it.
                for path in (directory, directory / "cgroup.procs", directory / "tasks"):
                    if path.exists():
                        os.chown(path, uid, gid)
        except OSError:
            return None
        return cgroups

    def usable(self) -> bool:
        """Whether this process may create cgroups in every directory."""
        return all(d.is_dir() and os.access(d, os.W_OK) for d in self.dirs.values())

    def create(self, sandbox: str) -> SandboxCgroup:
        """A new cgroup per controller for one sandbox."""
        cgroup = SandboxCgroup(sandbox, {c: d / sandbox for c, d in self.dirs.items()})
        for directory in cgroup.dirs.values():
            directory.mkdir()
        return cgroup

    def sweep(self, keep: set[str]) -> int:
        """Remove the cgroups of sandboxes not in ``keep``, killing what is left in them (a
        cgroup whose sandbox was still dying when it ended could not be removed then); how
        many were removed."""
        names = {
            p.name for d in self.dirs.values() if d.is_dir() for p in d.iterdir() if p.is_dir()
        }
        gone = 0
        for name in sorted(names - keep):
            cgroup = SandboxCgroup(name, {c: d / name for c, d in self.dirs.items()})
            cgroup.kill()
            gone += cgroup.remove()
        return gone

    def remove(self) -> None:
        """Remove every sandbox's cgroups, then the delegated directories themselves."""
        self.sweep(set())
        for directory in self.dirs.values():
            with contextlib.suppress(OSError):
                directory.rmdir()


@dataclasses.dataclass(frozen=True)
class SandboxCgroup:
    """The cgroups of one sandbox."""

    name: str
    dirs: dict[str, Path]

    def join(self) -> None:
        """Move the calling process into them (run in the child between fork and exec)."""
        pid = str(os.getpid())
        for directory in self.dirs.values():
            (directory / "cgroup.procs").write_text(pid)

    def apply(self, limits: Limits) -> None:
        """Hold the sandbox to ``limits`` from now on."""
        memory, pids, cpu = (self.dirs[c] for c in CONTROLLERS)
        (memory / "memory.limit_in_bytes").write_text(str(limits.memory_mb * MIB))
        swap = memory / "memory.memsw.limit_in_bytes"  # with swap accounting: none beyond it
        if swap.exists():
            swap.write_text(str(limits.memory_mb * MIB))
        (pids / "pids.max").write_text(str(limits.pids))
        (cpu / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
        (cpu / "cpu.cfs_quota_us").write_text(str(round(limits.cpus * CPU_PERIOD_US)))

    def out_of_memory(self) -> bool:
        """Whether the kernel killed a process of the sandbox for exceeding its memory."""
        try:
            control = (self.dirs["memory"] / "memory.oom_control").read_text()
        except OSError:
            return False
        counts = dict(line.split() for line in control.splitlines() if len(line.split()) == 2)
        return int(counts.get("oom_kill", "0")) > 0

    def kill(self) -> None:
        """SIGKILL every process still in the sandbox's cgroups."""
        for directory in self.dirs.values():
            with contextlib.suppress(OSError):
                for pid in (directory / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(int(pid), signal.SIGKILL)

    def remove(self) -> bool:
        """Remove the cgroups (their processes are gone); whether all of them went."""
        removed = True
        for directory in self.dirs.values():
            try:
                directory.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                removed = False
        return removed
