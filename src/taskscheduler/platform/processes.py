"""Process supervision: PID files, detached starts, waiting for readiness, stopping process trees.

The supervisor only ever signals processes it started itself: each one runs in its own session,
its PID sits in the state directory, and before a signal is sent the PID is checked to still be
a session leader running the expected command (see ``catalogue``), so a recycled PID never gets
killed. Linux only: processes are inspected through /proc.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from taskscheduler import errors, runuser
from taskscheduler.platform import catalogue

RESPAWN_MODULE = "taskscheduler.respawn"
POLL_SECONDS = 0.2
STOP_GRACE_SECONDS = 10.0
LOG_TAIL_LINES = 30


class ServiceFailed(errors.PlatformUnavailable):
    """A platform service did not come up; carries the tail of its log."""

    def __init__(self, summary: str, log_tail: str = "") -> None:
        self.summary = summary
        self.log_tail = log_tail
        super().__init__(f"{summary}\n{log_tail}" if log_tail else summary)


class Supervisor:
    """Starts services detached, keeps their PIDs and logs in the state dir, stops its own."""

    def __init__(self, state_dir: Path, cwd: Path) -> None:
        self.state_dir = state_dir
        self.cwd = cwd  # where every child runs (the project directory)

    @property
    def log_dir(self) -> Path:
        """Where the service logs go."""
        return self.state_dir / "logs"

    def log_path(self, service: str) -> Path:
        """The log file of a supervised service."""
        return self.log_dir / f"{service}.log"

    def pid_path(self, service: str) -> Path:
        """The PID file of a supervised service."""
        return self.state_dir / f"{service}.pid"

    def read_pid(self, service: str) -> int | None:
        """The PID in the service's PID file, alive or not."""
        try:
            return int(self.pid_path(service).read_text().strip())
        except (OSError, ValueError):
            return None

    def live_pid(self, service: str) -> int | None:
        """The PID in the service's PID file if that process is alive and is ours."""
        pid = self.read_pid(service)
        if pid is None or not alive(pid):
            return None
        try:
            is_leader = os.getsid(pid) == pid
        except OSError:
            return None
        return pid if is_leader and catalogue.recognises(service, cmdline(pid)) else None

    def spawn(
        self,
        service: str,
        command: list[str],
        env: Mapping[str, str],
        *,
        respawn: bool = False,
        user: runuser.RunUser | None = None,
    ) -> int:
        """Start a service detached in its own session, logging to its log file.

        ``respawn``: under ``taskscheduler.respawn``, which starts it again when it exits by
        itself (workers and the watchdog: clients that give up when a call fails). ``user``:
        as that account (the respawn wrapper too), with no capabilities.
        """
        if respawn:
            command = [sys.executable, "-m", RESPAWN_MODULE, *command]
        if user is not None:
            command = user.command(command)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path(service)
        with log.open("ab") as out:
            out.write(f"\n=== {time.strftime('%F %T')} {' '.join(command)}\n".encode())
            out.flush()
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=self.cwd,
                start_new_session=True,
            )
        self.pid_path(service).write_text(f"{process.pid}\n")
        return process.pid

    def ensure(
        self,
        service: str,
        start: Callable[[], int],
        ready: Callable[[], bool],
        timeout: float,
        what: str,
    ) -> None:
        """Start the service with ``start`` unless ours already runs, then wait until ready."""
        pid = self.live_pid(service)
        if pid is None:
            pid = start()
        self.wait_until(service, pid, ready, timeout, what)

    def wait_until(
        self,
        service: str,
        pid: int,
        ready: Callable[[], bool],
        timeout: float,
        what: str,
    ) -> None:
        """Poll until ready; stop the service and report its log if it dies or times out."""
        deadline = time.monotonic() + timeout
        while not ready():
            if not alive(pid):
                self.pid_path(service).unlink(missing_ok=True)
                raise ServiceFailed(
                    f"{service} exited before {what} was ready; see {self.log_path(service)}",
                    self.log_tail(service),
                )
            if time.monotonic() > deadline:
                tail = self.log_tail(service)
                self.stop(service)
                raise ServiceFailed(
                    f"{what} was not ready within {timeout:.0f} s; see {self.log_path(service)}",
                    tail,
                )
            time.sleep(POLL_SECONDS)

    def log_tail(self, service: str) -> str:
        """The last lines of the service's log, to say why it failed."""
        try:
            lines = self.log_path(service).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def stop(self, service: str) -> None:
        """Stop one supervised service and whatever it started, then forget its PID."""
        pid = self.live_pid(service)
        if pid is not None:
            terminate(pid)
        self.pid_path(service).unlink(missing_ok=True)

    def tree(self, service: str) -> list[int]:
        """The service's live PID and those of everything it started (flow runs), if ours."""
        pid = self.live_pid(service)
        return [] if pid is None else [pid, *descendants(pid)]

    def run(self, argv: list[str], env: dict[str, str], timeout: float, what: str) -> None:
        """Run one command to its end; a failure raises with its last lines."""
        result = subprocess.run(
            argv,
            env=env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip().splitlines()
            raise ServiceFailed(
                f"{what} failed (exit code {result.returncode})",
                "\n".join(output[-LOG_TAIL_LINES:]),
            )


def wait_for(ready: Callable[[], bool], timeout: float, message: str) -> None:
    """Poll until ready, else raise `PlatformUnavailable` with ``message``."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise errors.PlatformUnavailable(message)
        time.sleep(POLL_SECONDS)


# -- process helpers (Linux /proc) ------------------------------------------------------------


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie (reaping it if it is our child)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    except OSError:
        return False
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state, ppid, ..., starttime)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def cmdline(pid: int) -> list[str]:
    """The process's command line, one argument an item (empty once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    stat = _stat(pid)
    return stat[19] if stat is not None and len(stat) > 19 else None


def descendants(root: int) -> dict[int, str]:
    """Every process below ``root``, with its start time to recognise it later.

    Prefect starts each flow run in a session of its own, so signalling the worker's process
    group does not reach them; they are found through their parent links instead.
    """
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                children.setdefault(int(stat[1]), []).append(int(entry.name))
    found: dict[int, str] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        started = _start_time(pid)
        if started is not None and pid not in found:
            found[pid] = started
            todo.extend(children.get(pid, []))
    return found


def terminate(leader: int) -> None:
    """SIGTERM a session leader's group and descendants; SIGKILL whatever outlives the grace."""
    below = descendants(leader)

    def signal_all(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader, sig)
        for pid, started in below.items():
            # Only the same process, never one that has since been given a recycled PID. A
            # SIGTERM reaches those in the leader's session through it (its group, or a
            # respawn wrapper passing it on); twice would make Prefect's worker kill itself.
            if _start_time(pid) != started:
                continue
            if sig == signal.SIGTERM and _session(pid) == leader:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def all_gone() -> bool:
        return not alive(leader) and not any(
            alive(pid) and _start_time(pid) == started for pid, started in below.items()
        )

    signal_all(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while not all_gone() and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    if not all_gone():
        signal_all(signal.SIGKILL)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while not all_gone() and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
