"""The bubblewrap command that puts a job's process in a sandbox of its own.

bubblewrap (``bwrap``, Debian's ``bubblewrap``) builds the sandbox from Linux namespaces, as
an unprivileged user: the job gets its own user, PID, IPC, UTS, cgroup and network namespace
(no network at all: not even the host's loopback, where PostgreSQL trusts every local
connection), a fresh ``/proc`` that shows only its own processes, a private ``/tmp`` and
``/dev``, and a read-only view of exactly what it needs to run Python: ``/usr`` and ``/etc``,
the interpreter's environment and the project. The platform's state directory is masked even
when it sits inside the project, and nothing else of the host (``/run``, ``/var``, ``/home``,
``/root``) is there at all; the only host paths it may write are those the operator lists
(``TASKS_SANDBOX_WRITABLE``, none by default). The one way out, when given, is the job
gateway's socket: its directory is mounted read-only at ``environment.DOOR_MOUNT``.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from pathlib import Path

from taskscheduler.gate import environment

BWRAP = "bwrap"
TMP_SIZE_BYTES = 256 * 1024 * 1024
# Debian's merged /usr: the top-level directories are links into it.
_USR_LINKS = ("bin", "lib", "lib64", "sbin")


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing (``make install`` installs it)."""


@dataclasses.dataclass(frozen=True)
class Sandbox:
    """What a sandbox shows of the host: read-only paths, masked paths, the door."""

    readable: Sequence[Path]  # mounted read-only at the same path (venv, project)
    masked: Sequence[Path] = ()  # hidden behind an empty tmpfs (the state dir)
    writable: Sequence[Path] = ()  # mounted read-write: only what the operator listed
    door: Path | None = None  # the gateway's socket directory, at DOOR_MOUNT
    workdir: Path | None = None

    def command(self, argv: Sequence[str]) -> list[str]:
        """``bwrap … -- argv``: run ``argv`` inside this sandbox."""
        bwrap = shutil.which(BWRAP)
        if bwrap is None:
            raise SandboxUnavailable(
                "bubblewrap (bwrap) is not installed; `make install` installs it"
            )
        args = [
            bwrap,
            "--unshare-all",  # user, ipc, pid, net, uts, cgroup: no network, no host processes
            "--die-with-parent",
            "--new-session",  # no ioctl on the worker's terminal
            "--cap-drop",
            "ALL",
            "--hostname",
            "job",
            "--ro-bind",
            "/usr",
            "/usr",
            "--ro-bind",
            "/etc",
            "/etc",
        ]
        for link in _USR_LINKS:
            if Path(f"/usr/{link}").exists():
                args += ["--symlink", f"usr/{link}", f"/{link}"]
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--size", str(TMP_SIZE_BYTES), "--tmpfs", "/tmp"]  # noqa: S108 - the job's own
        for path in _outermost(self.readable):
            args += ["--ro-bind", str(path), str(path)]
        readable = [r.resolve() for r in self.readable]
        for path in (m.resolve() for m in self.masked):
            if any(path.is_relative_to(r) for r in readable):
                args += ["--tmpfs", str(path)]
        for path in self.writable:
            args += ["--bind", str(path), str(path)]
        if self.door is not None:
            args += ["--ro-bind", str(self.door), environment.DOOR_MOUNT]
        if self.workdir is not None:
            args += ["--chdir", str(self.workdir)]
        return [*args, "--", *argv]


def _outermost(paths: Sequence[Path]) -> list[Path]:
    """The paths not inside another of them, outside /usr and /etc (mounted already)."""
    kept: list[Path] = []
    for path in sorted({p.resolve() for p in paths}, key=lambda p: len(p.parts)):
        if any(path.is_relative_to(k) for k in (*kept, Path("/usr"), Path("/etc"))):
            continue
        kept.append(path)
    return kept
