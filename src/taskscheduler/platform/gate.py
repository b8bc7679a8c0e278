"""The job gateway (``taskscheduler.gate``): the one door from a job to the platform.

It listens on a Unix socket in the door directory, which the sandboxes of the jobs can reach
while the database and the Prefect API's secrets stay out of their reach.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from taskscheduler import errors
from taskscheduler.gate import environment as job_environment
from taskscheduler.platform import catalogue
from taskscheduler.platform.environment import Environments
from taskscheduler.platform.processes import Supervisor
from taskscheduler.settings import Settings


class Gate:
    """Starts the gateway unless it runs, and knows when its socket accepts connections."""

    def __init__(
        self, settings: Settings, supervisor: Supervisor, environments: Environments
    ) -> None:
        self.settings = settings
        self.supervisor = supervisor
        self.environments = environments

    @property
    def socket(self) -> Path:
        """The gateway's socket."""
        return self.settings.door / job_environment.DOOR_SOCKET

    def ready(self) -> bool:
        """Whether the gateway accepts connections on its socket."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            try:
                sock.connect(str(self.socket))
            except OSError:
                return False
        return True

    def start(self) -> None:
        """Start the job gateway unless it runs, then wait for its socket."""
        self.supervisor.ensure(
            catalogue.GATE, self._spawn, self.ready, catalogue.GATE_TIMEOUT, "the job gateway"
        )

    def _spawn(self) -> int:
        if self.ready():
            # Not ours (ours is not running, or we would not be here): another platform's,
            # whose jobs would lose their door if this one took the socket over.
            raise errors.PlatformUnavailable(
                f"another platform's job gateway serves {self.socket}; give this platform a "
                "runtime directory of its own (TASKS_RUNTIME_DIR)"
            )
        self.socket.unlink(missing_ok=True)  # a stale one would look ready
        command = [sys.executable, "-m", catalogue.GATE_MODULE]
        return self.supervisor.spawn(
            catalogue.GATE, command, self.environments.gate(), respawn=True
        )
