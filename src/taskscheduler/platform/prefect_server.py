"""The Prefect server: its API and UI (in one or, tuned, several processes), its services, its
work pools and block types.

It is Prefect's server application with the fast lane's set-based endpoints mounted in its API
(``python -m taskscheduler._prefect.server``, what ``prefect server start`` runs, plus them).

The server migrates its own database on start. With ``TASKS_API_WORKERS > 1`` each API process
would migrate and register Prefect's block types at once, racing the others on a fresh database,
so both happen once beforehand and Prefect's services run in a process of their own.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path

import httpx

from taskscheduler import errors
from taskscheduler._prefect import admin
from taskscheduler.platform import catalogue
from taskscheduler.platform.addresses import Addresses, port_open
from taskscheduler.platform.environment import Environments
from taskscheduler.platform.keys import Keys
from taskscheduler.platform.processes import POLL_SECONDS, ServiceFailed, Supervisor, alive

DEFAULT_POOL = "process"
DEFAULT_POOL_TYPE = "process"
PREFECT_BLOCKS_MODULE = "taskscheduler._prefect.blocks"
BLOCK_MODULES = ("taskscheduler._prefect.blocks", "taskscheduler._prefect.automations")


class PrefectServer:
    """Starts the Prefect server and speaks to it for the supervisor (pools, blocks, workers)."""

    def __init__(
        self,
        addresses: Addresses,
        supervisor: Supervisor,
        environments: Environments,
        keys: Keys,
    ) -> None:
        self.addresses = addresses
        self.supervisor = supervisor
        self.environments = environments
        self.keys = keys
        # The ``prefect`` command of the interpreter running us.
        self.executable = Path(sys.executable).parent / "prefect"

    @property
    def admin(self) -> admin.Admin:
        """The Prefect calls the supervisor makes (``_prefect.admin``)."""
        return admin.Admin(self.addresses.api_url, self.keys.prefect_auth_string)

    def healthy(self) -> bool:
        """Whether the Prefect API answers its health check."""
        try:
            response = httpx.get(f"{self.addresses.api_url}/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def start(self) -> None:
        """Start the Prefect server (API, UI and services) unless it already runs."""
        self.supervisor.ensure(
            catalogue.SERVER,
            self._spawn,
            self.healthy,
            catalogue.SERVER_TIMEOUT,
            f"the Prefect API at {self.addresses.api_url}",
        )
        if self.environments.tuning().api_workers > 1:
            self.start_services()

    def _spawn(self) -> int:
        host, port = self.addresses.host, self.addresses.prefect_port
        if port_open(host, port):
            # Its health check would answer for ours: never mistake it for our server.
            raise errors.PlatformUnavailable(
                f"port {port} is in use by a process this"
                " platform did not start; stop it or set TASKS_PREFECT_PORT"
            )
        address = ["--host", host, "--port", str(port)]
        command = [sys.executable, "-m", catalogue.SERVER_MODULE, *address]
        env = self.environments.server()
        api_workers = self.environments.tuning().api_workers
        if api_workers > 1:
            # Each API process would migrate and register Prefect's block types at start-up,
            # racing the others on a fresh database ("relation … already exists", or a
            # duplicate block type, kills one, and the server stops): do both once here,
            # then start them all with both off.
            self.migrate(env)
            self.register_prefect_blocks(env)
            env["PREFECT_SERVER_DATABASE_MIGRATE_ON_START"] = "false"
            env["PREFECT_API_BLOCKS_REGISTER_ON_START"] = "false"
            command += ["--workers", str(api_workers)]
        return self.supervisor.spawn(catalogue.SERVER, command, env)

    def migrate(self, env: dict[str, str]) -> None:
        """Bring Prefect's tables to its latest revision (``prefect server database upgrade``)."""
        self.run(
            ["server", "database", "upgrade", "-y"],
            env,
            catalogue.SERVER_TIMEOUT,
            "migrating Prefect's database",
        )

    def register_prefect_blocks(self, env: dict[str, str]) -> None:
        """Register Prefect's own block types once (``taskscheduler._prefect.blocks``)."""
        self.supervisor.run(
            [sys.executable, "-m", PREFECT_BLOCKS_MODULE],
            env,
            catalogue.SERVER_TIMEOUT,
            "registering Prefect's block types",
        )

    def start_services(self) -> None:
        """Prefect's services in their own process (the API processes run none)."""
        if self.supervisor.live_pid(catalogue.SERVICES) is None:
            command = [sys.executable, "-m", catalogue.SERVICES_MODULE]
            service = catalogue.SERVICES
            pid = self.supervisor.spawn(service, command, self.environments.server())
            time.sleep(POLL_SECONDS)
            if not alive(pid):
                raise ServiceFailed(
                    f"{service} exited at start; see {self.supervisor.log_path(service)}",
                    self.supervisor.log_tail(service),
                )

    def run(self, args: list[str], env: dict[str, str], timeout: float, what: str) -> None:
        """Run one ``prefect`` command to its end; a failure raises with its last lines."""
        self.supervisor.run([str(self.executable), *args], env, timeout, what)

    def ensure_work_pool(self, name: str = DEFAULT_POOL, type: str = DEFAULT_POOL_TYPE) -> None:
        """Create the work pool with its type's default job template if it is missing."""
        self.admin.ensure_work_pool(name, type)

    def register_blocks(self, modules: Iterable[str] = BLOCK_MODULES) -> None:
        """Register our block types with the server so that blocks of them can be saved."""
        for module in modules:
            self.run(
                ["block", "register", "-m", module],
                self.environments.base(),
                catalogue.WORKER_TIMEOUT,
                f"registering the blocks of {module}",
            )
