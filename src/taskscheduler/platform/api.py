"""Our REST API (``taskscheduler.api``), served by uvicorn on ``TASKS_HOST:TASKS_API_PORT``.

It connects to the database as its own role, and is the only child given the first admin
token; it counts as up once its health check (Prefect and database reachable) answers.
"""

from __future__ import annotations

import sys

import httpx

from taskscheduler import errors
from taskscheduler.platform import catalogue
from taskscheduler.platform.addresses import Addresses, port_open
from taskscheduler.platform.environment import Environments
from taskscheduler.platform.processes import Supervisor


class RestApi:
    """Starts our REST API unless it runs, and checks its health."""

    def __init__(
        self, addresses: Addresses, supervisor: Supervisor, environments: Environments
    ) -> None:
        self.addresses = addresses
        self.supervisor = supervisor
        self.environments = environments

    def healthy(self) -> bool:
        """Whether our REST API answers its health check (Prefect and database reachable)."""
        try:
            response = httpx.get(f"{self.addresses.service_api_url}/healthz", timeout=5.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def start(self) -> None:
        """Start the REST API unless it already runs, then wait until it is healthy."""
        self.supervisor.ensure(
            catalogue.API,
            self._spawn,
            self.healthy,
            catalogue.API_TIMEOUT,
            f"the REST API at {self.addresses.service_api_url}",
        )

    def _spawn(self) -> int:
        if port_open(self.addresses.host, self.addresses.api_port):
            raise errors.PlatformUnavailable(
                f"port {self.addresses.api_port} is in use by a process this platform did"
                " not start; stop it or set TASKS_API_PORT"
            )
        command = [sys.executable, "-m", catalogue.API_MODULE]
        return self.supervisor.spawn(catalogue.API, command, self.environments.api())
