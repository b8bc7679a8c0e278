"""The local platform: one coordinator composing the collaborators that run each part.

`LocalPlatform` owns no process and no secret itself; it wires the parts together (the
supervisor, the database, the keys, the environments, the Prefect server, the workers, the
docker lane, the gateway, our API, the watchdog) and brings them up and down in order. Its
other methods are the surface tests and the benchmark drive, each handed to the part that owns it.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping
from pathlib import Path

from taskscheduler import credentials, dbroles
from taskscheduler.platform import catalogue
from taskscheduler.platform.addresses import Addresses
from taskscheduler.platform.api import RestApi
from taskscheduler.platform.catalogue import DOCKER_WORKER, SERVER, WORKER
from taskscheduler.platform.docker_lane import DockerLane
from taskscheduler.platform.environment import Environments
from taskscheduler.platform.gate import Gate
from taskscheduler.platform.keys import Keys
from taskscheduler.platform.postgres import Database
from taskscheduler.platform.prefect_server import DEFAULT_POOL, DEFAULT_POOL_TYPE, PrefectServer
from taskscheduler.platform.processes import Supervisor
from taskscheduler.platform.watchdog import Watchdog
from taskscheduler.platform.workers import Workers
from taskscheduler.settings import Settings


@dataclasses.dataclass(frozen=True)
class PlatformStatus:
    """What is running: the supervised processes and whether the API answers."""

    api_url: str
    ui_url: str
    server_pid: int | None
    server_alive: bool
    server_healthy: bool
    worker_pid: int | None
    worker_alive: bool
    docker_worker_pid: int | None = None
    docker_worker_alive: bool = False

    @property
    def up(self) -> bool:
        """Whether the whole platform is running and the API answers."""
        return self.server_alive and self.server_healthy and self.worker_alive


class LocalPlatform:
    """Starts, checks and stops the local platform described by a `Settings`."""

    def __init__(
        self,
        settings: Settings,
        extra_env: Mapping[str, str] | None = None,
        *,
        docker: bool = True,
    ) -> None:
        # Resolved once, because the worker runs in project_dir and must see the same paths.
        self.settings = settings.model_copy(
            update={
                "state_dir": settings.state_dir.resolve(),
                "project_dir": settings.project_dir.resolve(),
            }
        )
        self.extra_env = dict(extra_env or {})
        self.docker = docker  # whether `up` brings up the docker pool too
        self.addresses = Addresses.of(self.settings)
        self.supervisor = Supervisor(self.settings.state_dir, self.settings.project_dir)
        self.database = Database(self.settings)
        self.keys = Keys(self.settings, self.database)
        self.environments = Environments(
            self.settings, self.extra_env, self.addresses, self.keys, self.database
        )
        self.server = PrefectServer(self.addresses, self.supervisor, self.environments, self.keys)
        self.workers = Workers(self.settings, self.supervisor, self.environments, self.server)
        self.docker_lane = DockerLane(self.settings, self.environments, self.server, self.workers)
        self.gate = Gate(self.settings, self.supervisor, self.environments)
        self.api = RestApi(self.addresses, self.supervisor, self.environments)
        self.watchdog = Watchdog(self.supervisor, self.environments)
        self.prefect = self.server.executable
        self.worker_name = self.workers.process_name

    # -- the whole platform --------------------------------------------------------------------

    def up(self) -> PlatformStatus:
        """Bring everything up; each step does nothing when its part already runs.

        When the whole platform already runs, only the work pool is checked: block types are
        registered on the way up, so restart (down, up) after changing them.
        """
        status = self.status()
        self.prepare_state_dir()
        if status.up:
            self.migrate_store()
            self.gate.start()
            self.api.start()
            self.server.ensure_work_pool()
            self.workers.start_fast()
            self.workers.start_sandbox()
            if self.docker:
                self.docker_lane.ensure()
            self.watchdog.start()
            return self.status()
        self.database.ensure_cluster()
        self.database.ensure_database()
        self.tune_database()
        self.migrate_store()
        self.server.start()
        self.server.ensure_work_pool(DEFAULT_POOL, DEFAULT_POOL_TYPE)
        self.server.register_blocks()
        self.gate.start()
        self.workers.start_process(DEFAULT_POOL)
        self.workers.start_fast()
        self.workers.start_sandbox()
        if self.docker:
            self.docker_lane.ensure()
        self.api.start()
        self.watchdog.start()
        return self.status()

    def down(self) -> None:
        """Stop the workers (and the job containers), then the server; data stays in PostgreSQL."""
        self.stop(catalogue.WATCHDOG)
        self.stop(catalogue.API)
        self.stop(DOCKER_WORKER)
        self.docker_lane.remove_job_containers()
        self.stop(catalogue.FAST_WORKER)
        self.stop(catalogue.SANDBOX_WORKER)
        self.workers.remove_cgroups()
        for service in (WORKER, catalogue.GATE, catalogue.SERVICES, SERVER):
            self.stop(service)
        # Runtime state only (the door, the run user's Prefect home); nothing to keep, unless
        # another platform's gateway answers there (its jobs' door).
        if not self.gate.ready():
            shutil.rmtree(self.settings.runtime, ignore_errors=True)

    def status(self) -> PlatformStatus:
        """Which supervised processes are alive and whether the API answers."""
        supervisor = self.supervisor
        server_alive = supervisor.live_pid(SERVER) is not None
        return PlatformStatus(
            api_url=self.api_url,
            ui_url=self.ui_url,
            server_pid=supervisor.read_pid(SERVER),
            server_alive=server_alive,
            server_healthy=server_alive and self.server.healthy(),
            worker_pid=supervisor.read_pid(WORKER),
            worker_alive=supervisor.live_pid(WORKER) is not None,
            docker_worker_pid=supervisor.read_pid(DOCKER_WORKER),
            docker_worker_alive=supervisor.live_pid(DOCKER_WORKER) is not None,
        )

    def processes(self) -> list[int]:
        """PIDs of the live supervised processes and of everything they started (flow runs)."""
        return [pid for service in catalogue.ALL for pid in self.supervisor.tree(service)]

    def prepare_state_dir(self) -> None:
        """The state directory: traversable (the run user's home is inside) but not listable,
        its logs and secrets the platform's alone, the gateway's door open to jobs."""
        state = self.settings.state_dir
        state.mkdir(parents=True, exist_ok=True)
        state.chmod(0o711)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.chmod(0o700)
        for path in state.iterdir():
            if path.is_file():
                path.chmod(0o600)

    def migrate_store(self) -> None:
        """The database roles, our own tables at their latest revision, each object its role's."""
        self.database.bootstrap_roles(self.credentials)

    def tune_database(self) -> None:
        """Apply the tuning's PostgreSQL settings to this platform's database only."""
        self.database.tune(self.environments.tuning().database_settings())

    # -- addresses, paths and secrets ----------------------------------------------------------

    @property
    def ui_url(self) -> str:
        """Address of the Prefect UI."""
        return self.addresses.ui_url

    @property
    def api_url(self) -> str:
        """Address of the Prefect API, as ``PREFECT_API_URL`` wants it."""
        return self.addresses.api_url

    @property
    def service_api_url(self) -> str:
        """Address of our REST API."""
        return self.addresses.service_api_url

    @property
    def log_dir(self) -> Path:
        """Where the service logs go."""
        return self.supervisor.log_dir

    def log_path(self, service: str) -> Path:
        """The log file of a supervised service."""
        return self.supervisor.log_path(service)

    def pid_path(self, service: str) -> Path:
        """The PID file of a supervised service."""
        return self.supervisor.pid_path(service)

    @property
    def credentials(self) -> credentials.Credentials:
        """The platform's secrets (settings, else generated once into the state dir)."""
        return self.keys.credentials

    @property
    def prefect_auth_string(self) -> str:
        """The basic-auth string of the Prefect API (``user:password``)."""
        return self.keys.prefect_auth_string

    def database_passwords(self) -> dict[str, str]:
        """The database roles' passwords, by what they guard (for checks that none leaks)."""
        return self.keys.database_passwords()

    @property
    def roles(self) -> dbroles.Roles:
        """The database roles of this platform's database."""
        return self.database.roles

    @property
    def api_database_url(self) -> str:
        """How our API and the job gateway connect: as the API's role, with its password."""
        return self.database.api_url(self.credentials)

    @property
    def docker_problem(self) -> str | None:
        """Why the docker pool could not come up, when it could not."""
        return self.docker_lane.problem

    # -- environments --------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """Environment of every child: ours plus the API address and our own settings."""
        return self.environments.base()

    def server_env(self) -> dict[str, str]:
        """Environment of the Prefect server."""
        return self.environments.server()

    def worker_env(self) -> dict[str, str]:
        """Environment of a worker (no admin token, no encryption key)."""
        return self.environments.worker()

    # -- single parts, as tests and the benchmark drive them ----------------------------------

    def start_server(self) -> None:
        """Start the Prefect server unless it already runs."""
        self.server.start()

    def start_worker(self, pool: str = DEFAULT_POOL, name: str | None = None) -> None:
        """Start a process worker on the pool unless it already runs, then wait for it."""
        self.workers.start_process(pool, name)

    def ensure_docker(self, *, required: bool = False) -> bool:
        """The docker pool and its worker if Docker works (see `DockerLane.ensure`)."""
        return self.docker_lane.ensure(required=required)

    def ensure_docker_pool(self, image: str, pull: str) -> None:
        """Create the docker pool with the hardened template, or point it at ``image``."""
        self.docker_lane.ensure_pool(image, pull)

    def stop(self, service: str) -> None:
        """Stop one supervised service and whatever it started, then forget its PID."""
        self.supervisor.stop(service)

    def _live_pid(self, service: str) -> int | None:
        return self.supervisor.live_pid(service)

    def _read_pid(self, service: str) -> int | None:
        return self.supervisor.read_pid(service)

    def _worker_online(self, pool: str, name: str) -> bool:
        return self.workers.online(pool, name)
