"""The workers that start jobs: the process, fast, sandbox and docker lanes.

All run under ``taskscheduler.respawn`` (a worker is a client that gives up when a call to the
API fails). The process and fast lanes run as the run user (``runuser``), whose home lies in the
runtime directory; the docker lane's jobs run in containers instead. The fast lane's pool has the
process type, so a stock process worker could serve it too (more slowly); the exclusive
Scheduled → Pending claim keeps the two from running a job twice. The sandbox lane is a fast
worker in single-use mode on the ``sandbox`` pool, with cgroups delegated to the run user for
its sandboxes' limits (``sandbox.limits``).
"""

from __future__ import annotations

import functools
import socket
import sys

from taskscheduler import runuser
from taskscheduler._prefect import docker_pool
from taskscheduler.platform import catalogue
from taskscheduler.platform.environment import Environments
from taskscheduler.platform.prefect_server import DEFAULT_POOL, DEFAULT_POOL_TYPE, PrefectServer
from taskscheduler.platform.processes import Supervisor
from taskscheduler.sandbox import limits
from taskscheduler.settings import Settings

FAST_POOL = "fast"
SANDBOX_POOL = limits.POOL
# Sandboxes kept by the sandbox worker, warm or busy, and how many it may start when more runs
# are held ahead (each runs one job, so this also bounds the jobs running at once on the lane);
# an attempt may run at most SANDBOX_WALL_CLOCK seconds.
SANDBOX_PROCESSES = 8
SANDBOX_MAX_PROCESSES = 64
SANDBOX_WALL_CLOCK = 3600.0


class Workers:
    """Starts each lane's worker unless it runs, and waits until the pool lists it online."""

    def __init__(
        self,
        settings: Settings,
        supervisor: Supervisor,
        environments: Environments,
        server: PrefectServer,
    ) -> None:
        self.settings = settings
        self.supervisor = supervisor
        self.environments = environments
        self.server = server
        # Named after the machine and the platform's port, so platforms side by side differ.
        suffix = f"{socket.gethostname()}-{settings.prefect_port}"
        self.process_name = f"local-{suffix}"
        self.fast_name = f"fast-{suffix}"
        self.sandbox_name = f"sandbox-{suffix}"
        # The cgroups of the sandbox lane, one directory per controller, per platform.
        self.cgroup = f"taskscheduler-{settings.prefect_port}"
        self.docker_name = f"docker-{suffix}"

    @functools.cached_property
    def run_user(self) -> runuser.RunUser:
        """The system user the process and fast lanes run as (see ``runuser``)."""
        runtime = self.settings.runtime
        runtime.mkdir(parents=True, exist_ok=True)
        runtime.chmod(0o711)
        return runuser.ensure(self.settings.run_user, runtime / "lanes")

    def online(self, pool: str, name: str) -> bool:
        """Whether the pool lists the worker as online."""
        return self.server.admin.worker_online(pool, name)

    def lane_worker(self, lane: str, pool: str, name: str) -> tuple[list[str], dict[str, str]]:
        """The command and environment of a ``process``, ``fast`` or ``sandbox`` lane's
        worker, run as the run user: what ``up`` starts, and what a second worker must be."""
        if lane in ("fast", "sandbox"):
            command = [sys.executable, "-m", catalogue.FAST_MODULE, "--pool", pool]
        else:
            command = [sys.executable, "-m", catalogue.WORKERS_MODULE, "process", "--pool", pool]
            if self.settings.worker_limit:
                command += ["--limit", str(self.settings.worker_limit)]
        command += ["--name", name]
        env = self.environments.lane(self.run_user.home, mints=lane == "process")
        if lane == "fast":
            for key, value in self.environments.tuning().fast_lane_env().items():
                env.setdefault(key, value)
        if lane == "sandbox":
            command += [catalogue.SINGLE_USE_FLAG]
            env.setdefault("TASKS_FAST_PROCESSES", str(SANDBOX_PROCESSES))
            env.setdefault("TASKS_FAST_MAX_PROCESSES", str(SANDBOX_MAX_PROCESSES))
            env.setdefault("TASKS_FAST_WALL_CLOCK_LIMIT", str(SANDBOX_WALL_CLOCK))
            user = self.run_user
            if limits.Cgroups.delegate(self.cgroup, user.uid, user.gid) is not None:
                env["TASKS_FAST_CGROUP"] = self.cgroup
        return command, env

    def start_process(self, pool: str = DEFAULT_POOL, name: str | None = None) -> None:
        """Start a process worker on the pool unless it already runs, then wait for it."""
        worker = name or self.process_name

        def spawn() -> int:
            command, env = self.lane_worker("process", pool, worker)
            return self.supervisor.spawn(
                catalogue.WORKER, command, env, respawn=True, user=self.run_user
            )

        self.supervisor.ensure(
            catalogue.WORKER,
            spawn,
            lambda: self.online(pool, worker),
            catalogue.WORKER_TIMEOUT,
            f"worker {worker!r} on pool {pool!r}",
        )

    def start_fast(self) -> None:
        """Create the ``fast`` pool and start one fast worker on it unless it runs."""
        self._start_warm_lane("fast", catalogue.FAST_WORKER, FAST_POOL, self.fast_name)

    def start_sandbox(self) -> None:
        """Create the ``sandbox`` pool and start its worker unless it runs."""
        self._start_warm_lane("sandbox", catalogue.SANDBOX_WORKER, SANDBOX_POOL, self.sandbox_name)

    def _start_warm_lane(self, lane: str, service: str, pool: str, name: str) -> None:
        """The pool of a lane served by our fast worker, and that worker, as the run user."""
        self.server.ensure_work_pool(pool, DEFAULT_POOL_TYPE)

        def spawn() -> int:
            command, env = self.lane_worker(lane, pool, name)
            return self.supervisor.spawn(service, command, env, respawn=True, user=self.run_user)

        self.supervisor.ensure(
            service,
            spawn,
            lambda: self.online(pool, name),
            catalogue.WORKER_TIMEOUT,
            f"{lane} worker {name!r} on pool {pool!r}",
        )

    def remove_cgroups(self) -> None:
        """Remove the sandbox lane's delegated cgroups (once its worker is stopped)."""
        limits.Cgroups(self.cgroup).remove()

    def start_docker(self) -> None:
        """Start the docker pool's worker unless it already runs, then wait for it."""
        name, pool = self.docker_name, docker_pool.POOL

        def spawn() -> int:
            command = [sys.executable, "-m", catalogue.WORKERS_MODULE, "docker", "--pool", pool]
            command += ["--name", name]
            env = self.environments.minting()
            return self.supervisor.spawn(catalogue.DOCKER_WORKER, command, env, respawn=True)

        self.supervisor.ensure(
            catalogue.DOCKER_WORKER,
            spawn,
            lambda: self.online(pool, name),
            catalogue.WORKER_TIMEOUT,
            f"worker {name!r} on pool {pool!r}",
        )
