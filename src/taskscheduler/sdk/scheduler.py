"""The SDK's two clients: ``AsyncTaskScheduler`` (coroutines) and ``TaskScheduler`` (blocking)."""

from __future__ import annotations

import asyncio
import builtins
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from taskscheduler import audit, grants, models
from taskscheduler.declarative import Applied
from taskscheduler.sdk.core import TaskInput
from taskscheduler.sdk.jobs import JobOperations
from taskscheduler.sdk.schedules import ScheduleOperations
from taskscheduler.sdk.tasks import TaskOperations
from taskscheduler.settings import Settings

T = TypeVar("T")


class AsyncTaskScheduler(TaskOperations, ScheduleOperations, JobOperations):
    """Tasks and jobs on the platform, as coroutines.

    ``actor`` is who acts (default: the local user, as the SDK), ``grants`` which work pools and
    Secret blocks its tasks may use (default: every one, for code trusted in-process) and
    ``audit_sink`` where each state-changing call is recorded (default: the audit table of the
    platform's database); the REST API passes the token's identity and grants, its request id
    and its shared sink.
    """


class TaskScheduler:
    """The same operations as ``AsyncTaskScheduler``, blocking; use as a context manager."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        actor: audit.Actor | None = None,
        grants: grants.Grants | None = None,
        audit_sink: audit.AuditSink | None = None,
    ) -> None:
        self.aio = AsyncTaskScheduler(settings, actor=actor, grants=grants, audit_sink=audit_sink)
        self._runner = asyncio.Runner()

    def __enter__(self) -> TaskScheduler:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the event loop behind the blocking calls."""
        try:
            self._runner.run(self.aio.aclose())
        finally:
            self._runner.close()

    def _run(self, call: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        return self._runner.run(call(*args, **kwargs))  # type: ignore[arg-type]

    def create(self, task: TaskInput) -> models.Task:
        """See ``AsyncTaskScheduler.create``."""
        return self._run(self.aio.create, task)

    def create_many(self, tasks: Sequence[TaskInput]) -> builtins.list[models.Task]:
        """See ``AsyncTaskScheduler.create_many``."""
        return self._run(self.aio.create_many, tasks)

    def get(self, name: str) -> models.Task:
        """See ``AsyncTaskScheduler.get``."""
        return self._run(self.aio.get, name)

    def list(
        self, *, limit: int = 100, offset: int = 0, search: str | None = None
    ) -> list[models.Task]:
        """See ``AsyncTaskScheduler.list``."""
        return self._run(self.aio.list, limit=limit, offset=offset, search=search)

    def pools(self) -> builtins.list[str]:
        """See ``AsyncTaskScheduler.pools``."""
        return self._run(self.aio.pools)

    def update(self, name: str, changes: dict[str, Any]) -> models.Task:
        """See ``AsyncTaskScheduler.update``."""
        return self._run(self.aio.update, name, changes)

    def delete(self, name: str) -> None:
        """See ``AsyncTaskScheduler.delete``."""
        self._run(self.aio.delete, name)

    def pause(self, name: str) -> models.Task:
        """See ``AsyncTaskScheduler.pause``."""
        return self._run(self.aio.pause, name)

    def resume(self, name: str) -> models.Task:
        """See ``AsyncTaskScheduler.resume``."""
        return self._run(self.aio.resume, name)

    def apply(self, path: Path | str) -> builtins.list[Applied]:
        """See ``AsyncTaskScheduler.apply``."""
        return self._run(self.aio.apply, path)

    def schedule(self, name: str, at: dt.datetime) -> models.Job:
        """See ``AsyncTaskScheduler.schedule``."""
        return self._run(self.aio.schedule, name, at)

    def add_jobs(self, name: str, jobs: models.NewJobs | Mapping[str, Any]) -> models.AddedJobs:
        """See ``AsyncTaskScheduler.add_jobs``."""
        return self._run(self.aio.add_jobs, name, jobs)

    def run(self, name: str, parameters: dict[str, Any] | None = None) -> models.Job:
        """See ``AsyncTaskScheduler.run``."""
        return self._run(self.aio.run, name, parameters)

    def reschedule(self, job_id: str, at: dt.datetime) -> models.Job:
        """See ``AsyncTaskScheduler.reschedule``."""
        return self._run(self.aio.reschedule, job_id, at)

    def cancel(self, job_id: str) -> models.Job:
        """See ``AsyncTaskScheduler.cancel``."""
        return self._run(self.aio.cancel, job_id)

    def jobs(
        self,
        *,
        task: str | None = None,
        state: models.JobState | str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[models.Job]:
        """See ``AsyncTaskScheduler.jobs``."""
        return self._run(self.aio.jobs, task=task, state=state, limit=limit, offset=offset)

    def job(self, job_id: str) -> models.Job:
        """See ``AsyncTaskScheduler.job``."""
        return self._run(self.aio.job, job_id)

    def logs(self, job_id: str, *, limit: int | None = None) -> builtins.list[models.LogLine]:
        """See ``AsyncTaskScheduler.logs``."""
        return self._run(self.aio.logs, job_id, limit=limit)

    def wait(self, job_id: str, *, timeout: float = 300.0, interval: float = 0.5) -> models.Job:
        """See ``AsyncTaskScheduler.wait``."""
        return self._run(self.aio.wait, job_id, timeout=timeout, interval=interval)

    def health(self) -> None:
        """See ``AsyncTaskScheduler.health``."""
        self._run(self.aio.health)
