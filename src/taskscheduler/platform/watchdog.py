"""The watchdog (``taskscheduler.services.watchdog``): crash retries, SLA events, the zombie
automation and the canary.

It speaks to Prefect only, so it gets no database URL; it counts as up once the automation that
marks zombie flow runs crashed exists.
"""

from __future__ import annotations

import sys

from taskscheduler.platform import catalogue
from taskscheduler.platform.environment import Environments
from taskscheduler.platform.prefect_server import PrefectServer
from taskscheduler.platform.processes import Supervisor


class Watchdog:
    """Starts the watchdog unless it runs, and waits for its zombie automation."""

    def __init__(
        self, supervisor: Supervisor, environments: Environments, server: PrefectServer
    ) -> None:
        self.supervisor = supervisor
        self.environments = environments
        self.server = server

    def start(self) -> None:
        """Start the watchdog unless it runs; ready once its zombie automation exists."""
        self.supervisor.ensure(
            catalogue.WATCHDOG,
            self._spawn,
            lambda: self.server.admin.zombie_automation_exists(),
            catalogue.WORKER_TIMEOUT,
            "the watchdog",
        )

    def _spawn(self) -> int:
        command = [sys.executable, "-m", catalogue.WATCHDOG_MODULE]
        env = self.environments.client()
        return self.supervisor.spawn(catalogue.WATCHDOG, command, env, respawn=True)
