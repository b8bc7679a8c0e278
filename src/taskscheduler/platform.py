"""The local platform supervisor: PostgreSQL, one Prefect server and one process worker.

``python -m taskscheduler.platform up|down|status`` (and ``make up``/``make down``) bring the
whole platform up on one machine and down again. The supervisor only ever signals processes it
started itself: each one runs in its own session, its PID sits in ``state_dir``, and before a
signal is sent the PID is checked to still be a session leader running the expected Prefect
command, so a recycled PID never gets killed. All state lives in PostgreSQL, so a later ``up``
finds every deployment, work pool and block again.

This module imports nothing from the package except settings and errors, so it can start the
platform before any of the domain code is importable (or correct).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
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

from taskscheduler import errors
from taskscheduler.settings import Settings, get_settings

__all__ = ["LocalPlatform", "PlatformStatus", "ServiceFailed", "main"]

SERVER = "prefect-server"
WORKER = "prefect-worker"
DEFAULT_POOL = "process"
DEFAULT_POOL_TYPE = "process"
BLOCK_MODULES = ("taskscheduler.code_block",)

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

    @property
    def up(self) -> bool:
        """Whether the whole platform is running and the API answers."""
        return self.server_alive and self.server_healthy and self.worker_alive


class LocalPlatform:
    """Starts, checks and stops the local platform described by a `Settings`."""

    def __init__(
        self, settings: Settings, extra_env: Mapping[str, str] | None = None
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
        )
        env.update(self.extra_env)
        return env

    def server_env(self) -> dict[str, str]:
        """Environment of the Prefect server: where its database is and to migrate it."""
        env = self.env()
        env.update(
            PREFECT_SERVER_DATABASE_CONNECTION_URL=self.settings.asyncpg_url,
            PREFECT_SERVER_DATABASE_MIGRATE_ON_START="true",
        )
        env.update(self.extra_env)  # the caller's extras win over our defaults
        return env

    def worker_env(self) -> dict[str, str]:
        """Environment of the process worker: poll often so jobs start promptly."""
        env = self.env()
        env.update(
            PREFECT_WORKER_QUERY_SECONDS=WORKER_QUERY_SECONDS,
            PREFECT_WORKER_PREFETCH_SECONDS=WORKER_PREFETCH_SECONDS,
        )
        env.update(self.extra_env)  # the caller's extras win over our defaults
        return env

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
        versions = sorted(
            (p.name for p in clusters.iterdir() if p.is_dir()), key=_version_key
        )
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
            reason = (
                output.splitlines()[0] if output else f"exit code {result.returncode}"
            )
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
        engine = create_async_engine(
            _admin_url(self._db_url), isolation_level="AUTOCOMMIT"
        )
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
            pid = self._spawn(SERVER, command, self.server_env())
        self._wait_until(
            SERVER,
            pid,
            self.healthy,
            SERVER_TIMEOUT,
            f"the Prefect API at {self.api_url}",
        )

    # -- work pool and blocks ------------------------------------------------------------------

    def ensure_work_pool(
        self, name: str = DEFAULT_POOL, type: str = DEFAULT_POOL_TYPE
    ) -> None:
        """Create the work pool with its type's default job template if it is missing."""
        from prefect.client.orchestration import SyncPrefectClient
        from prefect.client.schemas.actions import WorkPoolCreate
        from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
        from prefect.workers.base import BaseWorker

        with SyncPrefectClient(self.api_url) as client:
            try:
                client.read_work_pool(name)
                return
            except ObjectNotFound:
                pass
            worker_class = BaseWorker.get_worker_class_from_type(type)
            if worker_class is None:
                raise errors.PlatformUnavailable(
                    f"no Prefect worker for pool type {type!r}"
                )
            pool = WorkPoolCreate(
                name=name,
                type=type,
                base_job_template=worker_class.get_default_base_job_template(),
            )
            try:
                client.create_work_pool(pool)
            except ObjectAlreadyExists:
                pass  # created concurrently, which is just as good

    def register_blocks(self, modules: Iterable[str] = BLOCK_MODULES) -> None:
        """Register our block types with the server so that blocks of them can be saved."""
        for module in modules:
            command = [str(self.prefect), "block", "register", "-m", module]
            result = subprocess.run(
                command,
                env=self.env(),
                cwd=self.settings.project_dir,
                capture_output=True,
                text=True,
                check=False,
                timeout=WORKER_TIMEOUT,
            )
            if result.returncode != 0:
                output = (result.stdout + result.stderr).strip().splitlines()
                raise ServiceFailed(
                    f"registering the blocks of {module} failed (exit code {result.returncode})",
                    "\n".join(output[-LOG_TAIL_LINES:]),
                )

    # -- worker --------------------------------------------------------------------------------

    def start_worker(self, pool: str = DEFAULT_POOL, name: str | None = None) -> None:
        """Start a process worker on the pool unless it already runs, then wait for it."""
        name = name or self.worker_name
        pid = self._live_pid(WORKER)
        if pid is None:
            command = [
                str(self.prefect),
                "worker",
                "start",
                "--pool",
                pool,
                "--name",
                name,
                "--type",
                DEFAULT_POOL_TYPE,
                "--install-policy",
                "never",
            ]
            pid = self._spawn(WORKER, command, self.worker_env())
        self._wait_until(
            WORKER,
            pid,
            lambda: self._worker_online(pool, name),
            WORKER_TIMEOUT,
            f"worker {name!r} on pool {pool!r}",
        )

    def _worker_online(self, pool: str, name: str) -> bool:
        from prefect.client.orchestration import SyncPrefectClient
        from prefect.client.schemas.objects import WorkerStatus
        from prefect.exceptions import ObjectNotFound

        with SyncPrefectClient(self.api_url) as client:
            try:
                workers = client.read_workers_for_work_pool(pool)
            except ObjectNotFound:
                return False  # the worker creates the pool if it has to; not there yet
        return any(w.name == name and w.status == WorkerStatus.ONLINE for w in workers)

    # -- the whole platform --------------------------------------------------------------------

    def up(self) -> PlatformStatus:
        """Bring everything up; each step does nothing when its part already runs.

        When the whole platform already runs, only the work pool is checked: block types are
        registered on the way up, so restart (down, up) after changing them.
        """
        status = self.status()
        if status.up:
            self.ensure_work_pool()
            return status
        self.ensure_postgres()
        self.ensure_database()
        self.start_server()
        self.ensure_work_pool(DEFAULT_POOL, DEFAULT_POOL_TYPE)
        self.register_blocks()
        self.start_worker(DEFAULT_POOL)
        return self.status()

    def down(self) -> None:
        """Stop the worker, then the server; the data stays in PostgreSQL."""
        for service in (WORKER, SERVER):
            self.stop(service)

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
        )

    def processes(self) -> list[int]:
        """PIDs of the live supervised processes and of everything they started (flow runs)."""
        pids: list[int] = []
        for service in (SERVER, WORKER):
            pid = self._live_pid(service)
            if pid is not None:
                pids.append(pid)
                pids.extend(_descendants(pid))
        return pids

    # -- processes -----------------------------------------------------------------------------

    def _spawn(self, service: str, command: list[str], env: Mapping[str, str]) -> int:
        """Start a service detached in its own session, logging to its log file."""
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
        try:
            os.killpg(leader, sig)
        except ProcessLookupError:
            pass
        for pid, started in descendants.items():
            # Only the same process, never one that has since been given a recycled PID.
            if _start_time(pid) == started:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass

    def all_gone() -> bool:
        return not _alive(leader) and not any(
            _alive(pid) and _start_time(pid) == started
            for pid, started in descendants.items()
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
        env[f"TASKS_{name.upper()}"] = (
            value if isinstance(value, str) else json.dumps(value)
        )
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


# -- command line ------------------------------------------------------------------------------


def _print_where(platform: LocalPlatform) -> None:
    print(f"Prefect UI:  {platform.ui_url}")
    print(f"Prefect API: export PREFECT_API_URL={platform.api_url}")
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
