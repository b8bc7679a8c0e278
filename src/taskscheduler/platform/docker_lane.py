"""The docker lane: the engine and job image, the ``docker`` pool and its worker, and the job
containers left behind.

Docker is optional: when it cannot be used the rest of the platform runs on without this pool,
and ``problem`` says why.
"""

from __future__ import annotations

import shutil
import subprocess

from taskscheduler import errors
from taskscheduler._prefect import docker_pool
from taskscheduler.platform.environment import Environments
from taskscheduler.platform.prefect_server import PrefectServer
from taskscheduler.platform.workers import Workers
from taskscheduler.settings import Settings

DOCKER_CLI_TIMEOUT = 60.0


class DockerLane:
    """Brings the docker pool up when Docker works, and clears its job containers on ``down``."""

    def __init__(
        self,
        settings: Settings,
        environments: Environments,
        server: PrefectServer,
        workers: Workers,
    ) -> None:
        self.settings = settings
        self.environments = environments
        self.server = server
        self.workers = workers
        # Why the lane could not come up, when it could not.
        self.problem: str | None = None

    def ensure(self, *, required: bool = False) -> bool:
        """The ``docker`` pool with its hardened job template and its worker, if Docker works.

        Starts the engine and builds the job image when missing (``docker/ensure.sh``; the
        image is ``TASKS_DOCKER_IMAGE`` when set). With ``required`` a failure is raised
        instead of recorded in ``problem``.
        """
        try:
            env = self.environments.base()
            if self.settings.docker_image:
                docker_pool.ensure(self.settings.project_dir, env, "engine")
                image, pull = self.settings.docker_image, "IfNotPresent"
            else:
                image = docker_pool.ensure(self.settings.project_dir, env, "all")
                pull = "Never"  # built here; there may be no registry to pull from
            self.ensure_pool(image, pull)
            self.workers.start_docker()
        except errors.PlatformUnavailable as exc:
            self.problem = str(exc)
            if required:
                raise
            return False
        self.problem = None
        return True

    def ensure_pool(self, image: str, pull: str) -> None:
        """Create the docker pool with the hardened template, or point it at ``image``.

        An existing pool keeps its template (an operator may have tightened its bounds); only
        the default image and pull policy follow the image built for this checkout.
        """
        self.server.admin.ensure_docker_pool(image, pull)

    def remove_job_containers(self) -> None:
        """Remove the containers of jobs this platform's docker worker started (on `down`)."""
        if shutil.which("docker") is None:
            return
        label = f"label=io.prefect.worker-name={self.workers.docker_name}"
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
