"""The local platform supervisor: PostgreSQL, one Prefect server and one process worker.

``python -m taskscheduler.platform up|down|status`` (and ``make up``/``make down``) bring the
whole platform up on one machine and down again. The supervisor only ever signals processes it
started itself: each one runs in its own session, its PID sits in ``state_dir``, and before a
signal is sent the PID is checked to still be a session leader running the expected Prefect
command, so a recycled PID never gets killed. All state lives in PostgreSQL, so a later ``up``
finds every deployment, work pool and block again.

This module imports nothing from the package except settings, errors and credentials (our REST
API and its store only when started), so it can start the platform before any of the domain code
is importable (or correct).

The Prefect API is not left open: the server requires a basic-auth string, CSRF tokens and the
UI's origin for cross-origin calls, and encrypts block data with a key of ours; the secrets come
from ``TASKS_*`` settings or are generated on the first ``up`` (see ``credentials``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import httpx
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from taskscheduler import credentials, dbroles, errors, runuser
from taskscheduler._prefect import admin
from taskscheduler.gate import environment as job_environment
from taskscheduler.reliability import ReliabilitySettings
from taskscheduler.settings import Settings, get_settings
from taskscheduler.tuning import TuningSettings

__all__ = ["LocalPlatform", "PlatformStatus", "ServiceFailed", "drop_database", "free_port", "main"]

SERVER = "prefect-server"
WORKER = "prefect-worker"
DEFAULT_POOL = "process"
DEFAULT_POOL_TYPE = "process"
# The Docker pool's worker (the pool and its job template: taskscheduler._prefect.docker_pool).
DOCKER_WORKER = "docker-worker"
DOCKER_CLI_TIMEOUT = 60.0
RESPAWN_MODULE = "taskscheduler.respawn"
# The fast lane (taskscheduler.fastlane): warm processes, jobs held to their exact instant. Its
# pool has the process type, so a stock process worker could serve it too (more slowly); the
# exclusive Scheduled → Pending claim keeps the two from running a job twice.
FAST_WORKER = "fast-worker"
FAST_POOL = "fast"
FAST_MODULE = "taskscheduler.fastlane"
# With TASKS_API_WORKERS > 1 the API runs in several processes and Prefect's services in one of
# their own (taskscheduler.tuning).
SERVICES = "prefect-services"
PREFECT_BLOCKS_MODULE = "taskscheduler._prefect.blocks"
# Our REST API and web page (taskscheduler.web), served by uvicorn on TASKS_HOST:TASKS_API_PORT.
API = "taskscheduler-api"
API_MODULE = "taskscheduler.web"
# What a platform started before the page moved out of the API package ran (``make down``
# still knows it as ours).
FORMER_API_MODULE = "taskscheduler.api"
API_TIMEOUT = 180.0
# Secrets only the process that needs them may see: never the workers, whose children run
# user code (the Prefect auth string does reach them: flow runs must talk to the API).
_PRIVATE_ENV = ("TASKS_ADMIN_TOKEN", "TASKS_ENCRYPTION_KEY", "TASKS_GATE_KEY")
# The job gateway (taskscheduler.gate): the one door from a job to the platform.
GATE = "taskscheduler-gate"
GATE_MODULE = "taskscheduler.gate"
GATE_TIMEOUT = 60.0
# The process and docker lanes' workers: Prefect's, starting every job through the gateway.
WORKERS_MODULE = "taskscheduler._prefect.workers"
BLOCK_MODULES = ("taskscheduler._prefect.blocks", "taskscheduler._prefect.automations")
# The watchdog (taskscheduler.services.watchdog): crash retries, SLA events, zombie automation,
# canary.
WATCHDOG = "taskscheduler-watchdog"
WATCHDOG_MODULE = "taskscheduler.services.watchdog"

POLL_SECONDS = 0.2
POSTGRES_TIMEOUT = 30.0
# A first start on an empty database runs all of Prefect's migrations; on two cores that
# alone takes tens of seconds, so the server gets a generous bound.
SERVER_TIMEOUT = 180.0
WORKER_TIMEOUT = 60.0
STOP_GRACE_SECONDS = 10.0
LOG_TAIL_LINES = 30

# The worker asks for scheduled runs every second (default 10 s) so that a job due now starts
# within about a second, which keeps both interactive use and the integration tests snappy;
# one tiny query a second is nothing for a local server. It claims runs up to 2 s ahead of
# their start (default 10 s) to hide the ~1-2 s it takes to start the flow-run process, while
# keeping short the window in which a job that is still "waiting" has already been claimed.
WORKER_QUERY_SECONDS = "1"
WORKER_PREFETCH_SECONDS = "2"


class ServiceFailed(errors.PlatformUnavailable):
    """A platform service did not come up; carries the tail of its log."""

    def __init__(self, summary: str, log_tail: str = "") -> None:
        self.summary = summary
        self.log_tail = log_tail
        super().__init__(f"{summary}\n{log_tail}" if log_tail else summary)


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
        self.prefect = Path(sys.executable).parent / "prefect"
        self.worker_name = f"local-{socket.gethostname()}-{settings.prefect_port}"
        # Whether `up` brings up the docker pool too; why it could not, when it could not.
        self.docker = docker
        self.docker_worker_name = f"docker-{socket.gethostname()}-{settings.prefect_port}"
        self.docker_problem: str | None = None

    # -- addresses and paths ------------------------------------------------------------------

    @property
    def ui_url(self) -> str:
        """Address of the Prefect UI."""
        return f"http://{self.settings.host}:{self.settings.prefect_port}"

    @property
    def api_url(self) -> str:
        """Address of the Prefect API, as ``PREFECT_API_URL`` wants it."""
        return f"{self.ui_url}/api"

    @property
    def log_dir(self) -> Path:
        """Where the service logs go."""
        return self.settings.state_dir / "logs"

    def log_path(self, service: str) -> Path:
        """The log file of a supervised service."""
        return self.log_dir / f"{service}.log"

    def pid_path(self, service: str) -> Path:
        """The PID file of a supervised service."""
        return self.settings.state_dir / f"{service}.pid"

    @property
    def _db_url(self) -> URL:
        return make_url(self.settings.database_url)

    # -- environment ---------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """Environment of every child: ours plus the API address and our own settings.

        The ``TASKS_*`` settings are passed on so that flow runs started by the worker use
        the same database and project directory as the platform that started them.
        """
        env = dict(os.environ)
        env.update(_settings_env(self.settings))
        # Prefect's canonical names (PREFECT_SERVER_*), which take precedence over their
        # legacy aliases (PREFECT_UI_API_URL, PREFECT_API_DATABASE_*) a shell may still set.
        env.update(
            PREFECT_API_URL=self.api_url,
            PREFECT_SERVER_UI_API_URL=self.api_url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            # Every client of the Prefect API authenticates (workers, flow runs, our API, CLI).
            PREFECT_API_AUTH_STRING=self.prefect_auth_string,
            # Resolved here, once: a child running as another user would default elsewhere.
            TASKS_RUNTIME_DIR=str(self.settings.runtime),
            TASKS_DOOR_DIR=str(self.settings.door),
        )
        for name in _PRIVATE_ENV:
            env.pop(name, None)
        env.update(self.extra_env)
        return env

    @functools.cached_property
    def credentials(self) -> credentials.Credentials:
        """The platform's secrets (settings, else generated once into the state dir)."""
        existing = None
        if self.settings.encryption_key is None and not credentials.read_file(self.settings).get(
            "encryption_key"
        ):
            existing = self._prefect_encryption_key()
        return credentials.ensure(self.settings, existing_encryption_key=existing)

    @property
    def prefect_auth_string(self) -> str:
        """The basic-auth string of the Prefect API (``user:password``)."""
        return self.credentials.prefect_auth_string.get_secret_value()

    def _prefect_encryption_key(self) -> str | None:
        """The key Prefect generated in its database before we set one, to keep blocks readable."""

        async def read() -> str | None:
            engine = create_async_engine(self.settings.asyncpg_url)
            try:
                async with engine.connect() as conn:
                    value = await conn.scalar(
                        text("SELECT value FROM configuration WHERE key = 'ENCRYPTION_KEY'")
                    )
            except Exception:  # noqa: BLE001 - no database or no table yet: nothing to keep
                return None
            finally:
                await engine.dispose()
            key = value.get("fernet_key") if isinstance(value, dict) else None
            return key if isinstance(key, str) else None

        return asyncio.run(read())

    def api_env(self) -> dict[str, str]:
        """Environment of our REST API: the first admin token and where to listen."""
        env = self.env()
        env["TASKS_ADMIN_TOKEN"] = self.credentials.admin_token.get_secret_value()
        env["TASKS_DATABASE_URL"] = self.api_database_url  # its own role, never the superuser
        env.update(self.extra_env)
        return env

    @property
    def service_api_url(self) -> str:
        """Address of our REST API."""
        return f"http://{self.settings.host}:{self.settings.api_port}"

    def server_env(self) -> dict[str, str]:
        """Environment of the Prefect server: where its database is and to migrate it."""
        env = self.env()
        env.update(
            PREFECT_SERVER_DATABASE_CONNECTION_URL=self.prefect_database_url,
            PREFECT_SERVER_DATABASE_MIGRATE_ON_START="true",
            # Not left open: basic auth on every API call, CSRF tokens for state changes,
            # cross-origin calls only from the UI, block data under our own encryption key.
            PREFECT_SERVER_API_AUTH_STRING=self.prefect_auth_string,
            PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED="true",
            PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS=self.ui_url,
            PREFECT_SERVER_ENCRYPTION_KEY=self.credentials.encryption_key.get_secret_value(),
        )
        env.update(ReliabilitySettings().server_env())  # retention, late detection
        env.update(self.tuning().server_env())  # empty unless TASKS_TUNED / TASKS_API_WORKERS
        env.update(self.extra_env)  # the caller's extras win over our defaults
        return env

    def worker_env(self) -> dict[str, str]:
        """Environment of the process worker: poll often so jobs start promptly."""
        env = self.env()
        env.update(
            PREFECT_WORKER_QUERY_SECONDS=WORKER_QUERY_SECONDS,
            PREFECT_WORKER_PREFETCH_SECONDS=WORKER_PREFETCH_SECONDS,
        )
        env.update(ReliabilitySettings().job_env())  # heartbeats of the flow runs
        env.update(self.extra_env)  # the caller's extras win over our defaults
        return env

    def lane_env(self, *, mints: bool) -> dict[str, str]:
        """Environment of a worker that starts jobs: no database, a home of the run user's,
        and (``mints``) the gate key it signs each job's credential with."""
        env = self.worker_env()
        env.pop("TASKS_DATABASE_URL", None)
        home = self.run_user.home
        env.update(HOME=str(home), PREFECT_HOME=str(home / ".prefect"))
        if mints:
            env["TASKS_GATE_KEY"] = self.credentials.gate_key.get_secret_value()
        return env

    @functools.cached_property
    def run_user(self) -> runuser.RunUser:
        """The system user the process and fast lanes run as (see ``runuser``)."""
        runtime = self.settings.runtime
        runtime.mkdir(parents=True, exist_ok=True)
        runtime.chmod(0o711)
        return runuser.ensure(self.settings.run_user, runtime / "lanes")

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

    # -- PostgreSQL ----------------------------------------------------------------------------

    def ensure_postgres(self) -> None:
        """Start the local PostgreSQL cluster if nothing answers on the database port."""
        url = self._db_url
        host, port = url.host or "127.0.0.1", url.port or 5432
        if _port_open(host, port):
            return
        clusters = Path("/etc/postgresql")
        local = host in {"127.0.0.1", "localhost", "::1"}
        if not local or not clusters.is_dir() or not shutil.which("pg_ctlcluster"):
            raise errors.PlatformUnavailable(
                f"PostgreSQL does not answer on {host}:{port} and there is no local"
                " cluster to start"
            )
        versions = sorted((p.name for p in clusters.iterdir() if p.is_dir()), key=_version_key)
        if not versions:
            raise errors.PlatformUnavailable(f"no PostgreSQL cluster in {clusters}")
        command = [
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            versions[-1],
            "main",
            "start",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0 and not _port_open(host, port):
            output = (result.stderr or result.stdout).strip()
            reason = output.splitlines()[0] if output else f"exit code {result.returncode}"
            raise ServiceFailed(
                f"PostgreSQL does not answer on {host}:{port} and"
                f" `{' '.join(command)}` failed: {reason}",
                output,
            )
        _wait_for(
            lambda: _port_open(host, port),
            POSTGRES_TIMEOUT,
            f"PostgreSQL did not answer on {host}:{port} within {POSTGRES_TIMEOUT:.0f} s",
        )

    def ensure_database(self) -> None:
        """Create the database named in ``database_url`` if it does not exist yet."""
        asyncio.run(self._ensure_database())

    async def _ensure_database(self) -> None:
        name = self._db_url.database
        if not name:
            raise errors.PlatformUnavailable("TASKS_DATABASE_URL names no database")
        engine = create_async_engine(_admin_url(self._db_url), isolation_level="AUTOCOMMIT")
        try:
            deadline = time.monotonic() + POSTGRES_TIMEOUT
            while True:
                try:
                    async with engine.connect() as conn:
                        exists = await conn.scalar(
                            text("SELECT 1 FROM pg_database WHERE datname = :name"),
                            {"name": name},
                        )
                        if not exists:
                            quoted = engine.dialect.identifier_preparer.quote(name)
                            await conn.execute(text(f"CREATE DATABASE {quoted}"))
                    return
                except OSError as exc:
                    # A cluster that has just been started refuses connections for a moment.
                    if time.monotonic() > deadline:
                        raise errors.PlatformUnavailable(
                            f"cannot connect to PostgreSQL: {exc}"
                        ) from exc
                except Exception as exc:
                    if "starting up" not in str(exc) or time.monotonic() > deadline:
                        raise errors.PlatformUnavailable(
                            f"cannot create database {name!r}: {exc}"
                        ) from exc
                await asyncio.sleep(POLL_SECONDS)
        finally:
            await engine.dispose()

    # -- Prefect server ------------------------------------------------------------------------

    def healthy(self) -> bool:
        """Whether the Prefect API answers its health check."""
        try:
            response = httpx.get(f"{self.api_url}/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def start_server(self) -> None:
        """Start the Prefect server (API, UI and services) unless it already runs."""
        pid = self._live_pid(SERVER)
        if pid is None:
            if _port_open(self.settings.host, self.settings.prefect_port):
                # Its health check would answer for ours: never mistake it for our server.
                raise errors.PlatformUnavailable(
                    f"port {self.settings.prefect_port} is in use by a process this"
                    " platform did not start; stop it or set TASKS_PREFECT_PORT"
                )
            command = [
                str(self.prefect),
                "server",
                "start",
                "--host",
                self.settings.host,
                "--port",
                str(self.settings.prefect_port),
            ]
            env = self.server_env()
            if self.tuning().api_workers > 1:
                # Each API process would migrate and register Prefect's block types at start-up,
                # racing the others on a fresh database ("relation … already exists", or a
                # duplicate block type, kills one, and the server stops): do both once here,
                # then start them all with both off.
                self.migrate_prefect(env)
                self.register_prefect_blocks(env)
                env["PREFECT_SERVER_DATABASE_MIGRATE_ON_START"] = "false"
                env["PREFECT_API_BLOCKS_REGISTER_ON_START"] = "false"
                command += ["--workers", str(self.tuning().api_workers)]
            pid = self._spawn(SERVER, command, env)
        self._wait_until(
            SERVER,
            pid,
            self.healthy,
            SERVER_TIMEOUT,
            f"the Prefect API at {self.api_url}",
        )
        if self.tuning().api_workers > 1:
            self.start_services()

    # -- tuned topology (taskscheduler.tuning) -------------------------------------------------

    def migrate_prefect(self, env: dict[str, str]) -> None:
        """Bring Prefect's tables to its latest revision (``prefect server database upgrade``)."""
        self._prefect_command(
            ["server", "database", "upgrade", "-y"],
            env,
            SERVER_TIMEOUT,
            "migrating Prefect's database",
        )

    def register_prefect_blocks(self, env: dict[str, str]) -> None:
        """Register Prefect's own block types once (``taskscheduler._prefect.blocks``)."""
        self._command(
            [sys.executable, "-m", PREFECT_BLOCKS_MODULE],
            env,
            SERVER_TIMEOUT,
            "registering Prefect's block types",
        )

    def _prefect_command(
        self, args: list[str], env: dict[str, str], timeout: float, what: str
    ) -> None:
        """Run one ``prefect`` command to its end; a failure raises with its last lines."""
        self._command([str(self.prefect), *args], env, timeout, what)

    def _command(self, argv: list[str], env: dict[str, str], timeout: float, what: str) -> None:
        """Run one command to its end; a failure raises with its last lines."""
        result = subprocess.run(
            argv,
            env=env,
            cwd=self.settings.project_dir,
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

    def tuning(self) -> TuningSettings:
        """The tuning settings: ``TASKS_*`` of the environment, overridden by ``extra_env``."""
        fields = TuningSettings.model_fields
        overrides = {
            key[len("TASKS_") :].lower(): value
            for key, value in self.extra_env.items()
            if key.startswith("TASKS_") and key[len("TASKS_") :].lower() in fields
        }
        return TuningSettings(**overrides)  # type: ignore[arg-type]

    def start_services(self) -> None:
        """Prefect's services in their own process (the API processes run none)."""
        if self._live_pid(SERVICES) is None:
            command = [str(self.prefect), "server", "services", "start"]
            pid = self._spawn(SERVICES, command, self.server_env())
            time.sleep(POLL_SECONDS)
            if not _alive(pid):
                raise ServiceFailed(
                    f"{SERVICES} exited at start; see {self.log_path(SERVICES)}",
                    self._log_tail(SERVICES),
                )

    def tune_database(self) -> None:
        """Apply the tuning's PostgreSQL settings to this platform's database only."""
        settings = self.tuning().database_settings()
        if not settings:
            return

        async def run() -> None:
            engine = create_async_engine(_admin_url(self._db_url), isolation_level="AUTOCOMMIT")
            try:
                async with engine.connect() as conn:
                    name = engine.dialect.identifier_preparer.quote(self._db_url.database or "")
                    for key, value in settings.items():
                        await conn.execute(text(f"ALTER DATABASE {name} SET {key} = '{value}'"))
            finally:
                await engine.dispose()

        asyncio.run(run())

    # -- work pool and blocks ------------------------------------------------------------------

    @property
    def prefect_admin(self) -> admin.Admin:
        """The Prefect calls the supervisor makes (``_prefect.admin``)."""
        return admin.Admin(self.api_url, self.prefect_auth_string)

    def ensure_work_pool(self, name: str = DEFAULT_POOL, type: str = DEFAULT_POOL_TYPE) -> None:
        """Create the work pool with its type's default job template if it is missing."""
        self.prefect_admin.ensure_work_pool(name, type)

    def register_blocks(self, modules: Iterable[str] = BLOCK_MODULES) -> None:
        """Register our block types with the server so that blocks of them can be saved."""
        for module in modules:
            self._prefect_command(
                ["block", "register", "-m", module],
                self.env(),
                WORKER_TIMEOUT,
                f"registering the blocks of {module}",
            )

    # -- worker --------------------------------------------------------------------------------

    def start_worker(self, pool: str = DEFAULT_POOL, name: str | None = None) -> None:
        """Start a process worker on the pool unless it already runs, then wait for it."""
        name = name or self.worker_name
        pid = self._live_pid(WORKER)
        if pid is None:
            command = [sys.executable, "-m", WORKERS_MODULE, "process", "--pool", pool]
            command += ["--name", name]
            if self.settings.worker_limit:
                command += ["--limit", str(self.settings.worker_limit)]
            env = self.lane_env(mints=True)
            pid = self._spawn(WORKER, command, env, respawn=True, user=self.run_user)
        self._wait_until(
            WORKER,
            pid,
            lambda: self._worker_online(pool, name),
            WORKER_TIMEOUT,
            f"worker {name!r} on pool {pool!r}",
        )

    def _worker_online(self, pool: str, name: str) -> bool:
        return self.prefect_admin.worker_online(pool, name)

    # -- fast lane -----------------------------------------------------------------------------

    @property
    def fast_worker_name(self) -> str:
        """Name of the fast worker `up` starts (as the pool's workers list shows it)."""
        return f"fast-{socket.gethostname()}-{self.settings.prefect_port}"

    def start_fast_worker(self) -> None:
        """Create the ``fast`` pool and start one fast worker on it unless it runs."""
        self.ensure_work_pool(FAST_POOL, DEFAULT_POOL_TYPE)
        pid = self._live_pid(FAST_WORKER)
        if pid is None:
            command = [
                sys.executable,
                "-m",
                FAST_MODULE,
                "--pool",
                FAST_POOL,
                "--name",
                self.fast_worker_name,
            ]
            env = self.lane_env(mints=False)
            pid = self._spawn(FAST_WORKER, command, env, respawn=True, user=self.run_user)
        self._wait_until(
            FAST_WORKER,
            pid,
            lambda: self._worker_online(FAST_POOL, self.fast_worker_name),
            WORKER_TIMEOUT,
            f"fast worker {self.fast_worker_name!r} on pool {FAST_POOL!r}",
        )

    # -- Docker pool ---------------------------------------------------------------------------

    def ensure_docker(self, *, required: bool = False) -> bool:
        """The ``docker`` pool with its hardened job template and its worker, if Docker works.

        Starts the engine and builds the job image when missing (``docker/ensure.sh``; the
        image is ``TASKS_DOCKER_IMAGE`` when set). When Docker cannot be used, the rest of the
        platform runs on without this pool and ``docker_problem`` says why; with
        ``required`` the failure is raised instead.
        """
        from taskscheduler._prefect import docker_pool as _docker

        try:
            if self.settings.docker_image:
                _docker.ensure(self.settings.project_dir, self.env(), "engine")
                image, pull = self.settings.docker_image, "IfNotPresent"
            else:
                image = _docker.ensure(self.settings.project_dir, self.env(), "all")
                pull = "Never"  # built here; there may be no registry to pull from
            self.ensure_docker_pool(image, pull)
            self.start_docker_worker()
        except errors.PlatformUnavailable as exc:
            self.docker_problem = str(exc)
            if required:
                raise
            return False
        self.docker_problem = None
        return True

    def ensure_docker_pool(self, image: str, pull: str) -> None:
        """Create the docker pool with the hardened template, or point it at ``image``.

        An existing pool keeps its template (an operator may have tightened its bounds); only
        the default image and pull policy follow the image built for this checkout.
        """
        self.prefect_admin.ensure_docker_pool(image, pull)

    def start_docker_worker(self) -> None:
        """Start the docker pool's worker unless it already runs, then wait for it."""
        from taskscheduler._prefect import docker_pool as _docker

        name = self.docker_worker_name
        pid = self._live_pid(DOCKER_WORKER)
        if pid is None:
            command = [sys.executable, "-m", WORKERS_MODULE, "docker", "--pool", _docker.POOL]
            command += ["--name", name]
            env = self.worker_env()
            env.pop("TASKS_DATABASE_URL", None)
            env["TASKS_GATE_KEY"] = self.credentials.gate_key.get_secret_value()
            pid = self._spawn(DOCKER_WORKER, command, env, respawn=True)
        self._wait_until(
            DOCKER_WORKER,
            pid,
            lambda: self._worker_online(_docker.POOL, name),
            WORKER_TIMEOUT,
            f"worker {name!r} on pool {_docker.POOL!r}",
        )

    def remove_job_containers(self) -> None:
        """Remove the containers of jobs this platform's docker worker started (on `down`)."""
        if shutil.which("docker") is None:
            return
        label = f"label=io.prefect.worker-name={self.docker_worker_name}"
        try:
            found = subprocess.run(
                ["docker", "ps", "--all", "--quiet", "--filter", label],
                capture_output=True,
                text=True,
                check=False,
                timeout=DOCKER_CLI_TIMEOUT,
            )
            ids = found.stdout.split()
            if found.returncode == 0 and ids:
                subprocess.run(
                    ["docker", "rm", "--force", *ids],
                    capture_output=True,
                    check=False,
                    timeout=DOCKER_CLI_TIMEOUT,
                )
        except subprocess.TimeoutExpired:
            pass  # an engine that hangs has no containers of ours to remove in time

    # -- the whole platform --------------------------------------------------------------------

    # -- our REST API --------------------------------------------------------------------------

    def migrate_store(self) -> None:
        """The database roles (``dbroles``), our own tables (tokens, audit log) at their latest
        revision, and every object handed to its role; run with the bootstrap URL."""
        creds = self.credentials
        asyncio.run(
            dbroles.bootstrap(
                self.settings.database_url,
                prefect_password=creds.prefect_db_password.get_secret_value(),
                api_password=creds.api_db_password.get_secret_value(),
            )
        )

    @property
    def roles(self) -> dbroles.Roles:
        """The database roles of this platform's database."""
        return dbroles.Roles.of(self._db_url.database or "")

    @property
    def prefect_database_url(self) -> str:
        """How the Prefect server connects: as its own role, with its password (asyncpg)."""
        password = self.credentials.prefect_db_password.get_secret_value()
        return dbroles.role_url(self.settings.asyncpg_url, self.roles.prefect, password)

    @property
    def api_database_url(self) -> str:
        """How our API and the job gateway connect: as the API's role, with its password."""
        password = self.credentials.api_db_password.get_secret_value()
        return dbroles.role_url(self.settings.database_url, self.roles.api, password)

    def database_passwords(self) -> dict[str, str]:
        """The database roles' passwords, by what they guard (for checks that none leaks)."""
        creds = self.credentials
        return {
            "Prefect's database password": creds.prefect_db_password.get_secret_value(),
            "API's database password": creds.api_db_password.get_secret_value(),
        }

    def api_healthy(self) -> bool:
        """Whether our REST API answers its health check (Prefect and database reachable)."""
        try:
            response = httpx.get(f"{self.service_api_url}/healthz", timeout=5.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def start_api(self) -> None:
        """Start the REST API unless it already runs, then wait until it is healthy."""
        pid = self._live_pid(API)
        if pid is None:
            if _port_open(self.settings.host, self.settings.api_port):
                raise errors.PlatformUnavailable(
                    f"port {self.settings.api_port} is in use by a process this platform did"
                    " not start; stop it or set TASKS_API_PORT"
                )
            pid = self._spawn(API, [sys.executable, "-m", API_MODULE], self.api_env())
        self._wait_until(
            API, pid, self.api_healthy, API_TIMEOUT, f"the REST API at {self.service_api_url}"
        )

    # -- job gateway ---------------------------------------------------------------------------

    def gate_env(self) -> dict[str, str]:
        """Environment of the job gateway: the Prefect auth string, the gate key, the door."""
        env = self.env()
        env.update(
            TASKS_DATABASE_URL=self.api_database_url,
            TASKS_PREFECT_AUTH_STRING=self.prefect_auth_string,
            TASKS_GATE_KEY=self.credentials.gate_key.get_secret_value(),
        )
        env.update(self.extra_env)
        return env

    @property
    def gate_socket(self) -> Path:
        """The gateway's socket."""
        return self.settings.door / job_environment.DOOR_SOCKET

    def gate_ready(self) -> bool:
        """Whether the gateway accepts connections on its socket."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            try:
                sock.connect(str(self.gate_socket))
            except OSError:
                return False
        return True

    def start_gate(self) -> None:
        """Start the job gateway unless it runs, then wait for its socket."""
        pid = self._live_pid(GATE)
        if pid is None:
            self.gate_socket.unlink(missing_ok=True)
            command = [sys.executable, "-m", GATE_MODULE]
            pid = self._spawn(GATE, command, self.gate_env(), respawn=True)
        self._wait_until(GATE, pid, self.gate_ready, GATE_TIMEOUT, "the job gateway")

    # -- watchdog ------------------------------------------------------------------------------

    def start_watchdog(self) -> None:
        """Start the watchdog unless it runs; ready once its zombie automation exists."""
        pid = self._live_pid(WATCHDOG)
        if pid is None:
            command = [sys.executable, "-m", WATCHDOG_MODULE]
            env = self.worker_env()
            env.pop("TASKS_DATABASE_URL", None)  # it speaks to Prefect only
            pid = self._spawn(WATCHDOG, command, env, respawn=True)
        self._wait_until(
            WATCHDOG, pid, self._zombie_automation_exists, WORKER_TIMEOUT, "the watchdog"
        )

    def _zombie_automation_exists(self) -> bool:
        return self.prefect_admin.zombie_automation_exists()

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
            self.start_gate()
            self.start_api()
            self.ensure_work_pool()
            self.start_fast_worker()
            if self.docker:
                self.ensure_docker()
            self.start_watchdog()
            return self.status()
        self.ensure_postgres()
        self.ensure_database()
        self.tune_database()
        self.migrate_store()
        self.start_server()
        self.ensure_work_pool(DEFAULT_POOL, DEFAULT_POOL_TYPE)
        self.register_blocks()
        self.start_gate()
        self.start_worker(DEFAULT_POOL)
        self.start_fast_worker()
        if self.docker:
            self.ensure_docker()
        self.start_api()
        self.start_watchdog()
        return self.status()

    def down(self) -> None:
        """Stop the workers (and the job containers), then the server; data stays in PostgreSQL."""
        self.stop(WATCHDOG)
        self.stop(API)
        self.stop(DOCKER_WORKER)
        self.remove_job_containers()
        self.stop(FAST_WORKER)
        for service in (WORKER, GATE, SERVICES, SERVER):
            self.stop(service)
        # Runtime state only (the door, the run user's Prefect home); nothing to keep.
        shutil.rmtree(self.settings.runtime, ignore_errors=True)

    def stop(self, service: str) -> None:
        """Stop one supervised service and whatever it started, then forget its PID."""
        pid = self._live_pid(service)
        if pid is not None:
            _terminate(pid)
        self.pid_path(service).unlink(missing_ok=True)

    def status(self) -> PlatformStatus:
        """Which supervised processes are alive and whether the API answers."""
        server_pid, worker_pid = self._read_pid(SERVER), self._read_pid(WORKER)
        server_alive = self._live_pid(SERVER) is not None
        return PlatformStatus(
            api_url=self.api_url,
            ui_url=self.ui_url,
            server_pid=server_pid,
            server_alive=server_alive,
            server_healthy=server_alive and self.healthy(),
            worker_pid=worker_pid,
            worker_alive=self._live_pid(WORKER) is not None,
            docker_worker_pid=self._read_pid(DOCKER_WORKER),
            docker_worker_alive=self._live_pid(DOCKER_WORKER) is not None,
        )

    def processes(self) -> list[int]:
        """PIDs of the live supervised processes and of everything they started (flow runs)."""
        pids: list[int] = []
        for service in (SERVER, WORKER, DOCKER_WORKER, FAST_WORKER, API, WATCHDOG, SERVICES, GATE):
            pid = self._live_pid(service)
            if pid is not None:
                pids.append(pid)
                pids.extend(_descendants(pid))
        return pids

    # -- processes -----------------------------------------------------------------------------

    def _spawn(
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
                cwd=self.settings.project_dir,
                start_new_session=True,
            )
        self.pid_path(service).write_text(f"{process.pid}\n")
        return process.pid

    def _wait_until(
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
            if not _alive(pid):
                self.pid_path(service).unlink(missing_ok=True)
                raise ServiceFailed(
                    f"{service} exited before {what} was ready; see {self.log_path(service)}",
                    self._log_tail(service),
                )
            if time.monotonic() > deadline:
                tail = self._log_tail(service)
                self.stop(service)
                raise ServiceFailed(
                    f"{what} was not ready within {timeout:.0f} s; see {self.log_path(service)}",
                    tail,
                )
            time.sleep(POLL_SECONDS)

    def _log_tail(self, service: str) -> str:
        try:
            lines = self.log_path(service).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def _read_pid(self, service: str) -> int | None:
        try:
            return int(self.pid_path(service).read_text().strip())
        except (OSError, ValueError):
            return None

    def _live_pid(self, service: str) -> int | None:
        """The PID in the service's PID file if that process is alive and is ours."""
        pid = self._read_pid(service)
        if pid is None or not _alive(pid):
            return None
        role = "server" if service == SERVER else "worker"
        try:
            is_leader = os.getsid(pid) == pid
        except OSError:
            return None
        cmdline = _cmdline(pid)
        if service == FAST_WORKER:
            return pid if is_leader and FAST_MODULE in cmdline else None
        if service == SERVICES:
            return pid if is_leader and "services" in cmdline and "server" in cmdline else None
        if service == API:
            ours = API_MODULE in cmdline or FORMER_API_MODULE in cmdline
            return pid if is_leader and ours else None
        if service == WATCHDOG:
            return pid if is_leader and WATCHDOG_MODULE in cmdline else None
        if service == GATE:
            return pid if is_leader and GATE_MODULE in cmdline else None
        if service in (WORKER, DOCKER_WORKER):
            return pid if is_leader and WORKERS_MODULE in cmdline else None
        if is_leader and "prefect" in " ".join(cmdline) and role in cmdline:
            return pid
        return None


# -- process helpers (Linux /proc) ------------------------------------------------------------


def _alive(pid: int) -> bool:
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


def _cmdline(pid: int) -> list[str]:
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


def _descendants(root: int) -> dict[int, str]:
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


def _terminate(leader: int) -> None:
    """SIGTERM a session leader's group and descendants; SIGKILL whatever outlives the grace."""
    descendants = _descendants(leader)

    def signal_all(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader, sig)
        for pid, started in descendants.items():
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
        return not _alive(leader) and not any(
            _alive(pid) and _start_time(pid) == started for pid, started in descendants.items()
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


# -- small helpers -----------------------------------------------------------------------------


def _settings_env(settings: Settings) -> dict[str, str]:
    """The settings as the ``TASKS_*`` variables that would produce them."""
    env: dict[str, str] = {}
    dumped = settings.model_dump(mode="json")
    for name, value in dumped.items():
        raw = getattr(settings, name)
        if raw is None:
            continue
        if isinstance(raw, SecretStr):
            value = raw.get_secret_value()  # the dump masks secrets; children need them
        # Complex fields travel as JSON, which is how pydantic-settings reads them back.
        env[f"TASKS_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _admin_url(url: URL) -> URL:
    """The same server's maintenance database, through asyncpg."""
    return url.set(drivername="postgresql+asyncpg", database="postgres")


def _wait_for(ready: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise errors.PlatformUnavailable(message)
        time.sleep(POLL_SECONDS)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def drop_database(database_url: str) -> None:
    """Drop a throwaway database (tests, benchmarks) after ending its connections."""

    async def drop() -> None:
        url = make_url(database_url)
        admin = url.set(drivername="postgresql+asyncpg", database="postgres")
        engine = create_async_engine(admin, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": url.database},
                )
                quoted = engine.dialect.identifier_preparer.quote(url.database or "")
                await conn.execute(text(f"DROP DATABASE IF EXISTS {quoted}"))
        finally:
            await engine.dispose()
        await dbroles.drop(database_url)

    asyncio.run(drop())


# -- command line ------------------------------------------------------------------------------


def _print_where(platform: LocalPlatform) -> None:
    print(f"Prefect UI:  {platform.ui_url}")
    print(f"Prefect API: export PREFECT_API_URL={platform.api_url}")
    print(f"Web page:    {platform.service_api_url}/ui (sign in with a token, e.g. the admin one)")
    print(f"REST API:    {platform.service_api_url}/docs")
    print(f"Secrets:     {credentials.path(platform.settings)} (Prefect auth string, admin token)")
    print(f"Logs:        {platform.log_dir}")


def main(argv: list[str] | None = None) -> int:
    """``python -m taskscheduler.platform up|down|status``."""
    parser = argparse.ArgumentParser(
        prog="python -m taskscheduler.platform",
        description="Start, stop or inspect the local task-scheduling platform.",
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    try:
        platform = LocalPlatform(get_settings())
        if args.command == "up":
            platform.up()
            print("The platform is up.")
            if platform.docker_problem:
                print(f"warning: no docker pool: {platform.docker_problem}", file=sys.stderr)
            _print_where(platform)
        elif args.command == "down":
            platform.down()
            print("The platform is down; its data stays in PostgreSQL.")
        else:
            status = platform.status()
            server = "healthy" if status.server_healthy else "not answering"
            print(f"server: pid {status.server_pid or '-'}, {server}")
            print(f"worker: pid {status.worker_pid or '-'}, ", end="")
            print("alive" if status.worker_alive else "not running")
            print(f"docker worker: pid {status.docker_worker_pid or '-'}, ", end="")
            print("alive" if status.docker_worker_alive else "not running")
            _print_where(platform)
            if not status.up:
                print("error: the platform is not (fully) running", file=sys.stderr)
                return 1
    except ServiceFailed as exc:
        print(f"error: {exc.summary}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the command line shows one line, no traceback
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
