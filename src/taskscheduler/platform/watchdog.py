"""The watchdog (``taskscheduler.services.watchdog``): crash detection and retries, SLA
events, the global notification routes and the canary.

It speaks to Prefect only, so it gets no database URL; it counts as up once it has written
the time of its first round through to its ready file.
"""

from __future__ import annotations

import sys
from pathlib import Path

from taskscheduler.platform import catalogue
from taskscheduler.platform.environment import Environments
from taskscheduler.platform.processes import Supervisor


class Watchdog:
    """Starts the watchdog unless it runs, and waits for its first round."""

    def __init__(self, supervisor: Supervisor, environments: Environments) -> None:
        self.supervisor = supervisor
        self.environments = environments

    @property
    def ready_file(self) -> Path:
        """Where the watchdog writes the time of its last round."""
        return self.supervisor.state_dir / "watchdog.ready"

    def start(self) -> None:
        """Start the watchdog unless it runs; ready once its first round went through."""
        self.supervisor.ensure(
            catalogue.WATCHDOG,
            self._spawn,
            self.ready_file.exists,
            catalogue.WORKER_TIMEOUT,
            "the watchdog's first round",
        )

    def _spawn(self) -> int:
        self.ready_file.unlink(missing_ok=True)  # a past run's, not this one's
        command = [
            sys.executable,
            "-m",
            catalogue.WATCHDOG_MODULE,
            "--ready-file",
            str(self.ready_file),
        ]
        env = self.environments.client()
        return self.supervisor.spawn(catalogue.WATCHDOG, command, env, respawn=True)
