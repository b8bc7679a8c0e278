"""What the platform supervisor asks of a Prefect server it has started: work pools, whether a
worker is online, whether the watchdog's automation exists. Synchronous, one short-lived client
per call: the supervisor is a command-line program that polls."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import WorkerStatus
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.workers.base import BaseWorker

from taskscheduler import errors
from taskscheduler._prefect import docker_pool


class Admin:
    """One Prefect API, with the platform's own credentials."""

    def __init__(self, api_url: str, auth_string: str) -> None:
        self.api_url = api_url
        self.auth_string = auth_string

    @contextlib.contextmanager
    def _client(self) -> Iterator[SyncPrefectClient]:
        with SyncPrefectClient(self.api_url, auth_string=self.auth_string) as client:
            yield client

    def ensure_work_pool(self, name: str, type: str) -> None:
        """Create the work pool with its type's default job template if it is missing."""
        with self._client() as client:
            try:
                client.read_work_pool(name)
                return
            except ObjectNotFound:
                pass
            worker_class = BaseWorker.get_worker_class_from_type(type)
            if worker_class is None:
                raise errors.PlatformUnavailable(f"no Prefect worker for pool type {type!r}")
            pool = WorkPoolCreate(
                name=name,
                type=type,
                base_job_template=worker_class.get_default_base_job_template(),
            )
            with contextlib.suppress(ObjectAlreadyExists):  # created concurrently: just as good
                client.create_work_pool(pool)

    def ensure_docker_pool(self, image: str, pull: str) -> None:
        """The docker pool with the hardened template, pointed at ``image`` (``docker_pool``)."""
        with self._client() as client:
            docker_pool.ensure_pool(client, image, pull=pull)

    def worker_online(self, pool: str, name: str) -> bool:
        """Whether a worker of that name is online on the pool."""
        with self._client() as client:
            try:
                workers = client.read_workers_for_work_pool(pool)
            except ObjectNotFound:
                return False  # the worker creates the pool if it has to; not there yet
        return any(w.name == name and w.status == WorkerStatus.ONLINE for w in workers)
