"""``AsyncClient``: ``Client``'s calls for asyncio (the same names, arguments and errors; the
SDK's ``AsyncTaskScheduler`` has the same method names where it has the call)."""

from __future__ import annotations

import asyncio
import builtins
import datetime as dt
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from taskscheduler import models
from taskscheduler.client import calls, transport
from taskscheduler.client.config import Config, resolve
from taskscheduler.client.paging import Pager
from taskscheduler.models.audit import AuditEntry
from taskscheduler.models.status import Snapshot
from taskscheduler.models.tokens import NewToken, Scope, TokenInfo
from taskscheduler.wire import bodies

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741


class AsyncClient:
    """The task scheduler's REST API (``/v1``) as typed calls, for asyncio.

    ``url`` and ``token`` default to ``TASKS_URL`` and ``TASKS_TOKEN``, then to the file
    ``tasks login`` writes (``taskscheduler.client.config``).
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        config_path: Path | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config: Config = resolve(url, token, path=config_path)
        self._http = httpx.AsyncClient(
            base_url=self.config.url,
            headers=transport.headers(self.config),
            timeout=timeout,
            transport=http_transport,
        )

    @property
    def url(self) -> str:
        """The API's base URL."""
        return self.config.url

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def send(self, call: calls.Call[T]) -> T:
        """Send one call; its typed answer, or the error the answer stands for."""
        try:
            response = await self._http.request(
                call.method, call.path, params=call.params, json=call.body
            )
        except httpx.TransportError as exc:
            raise transport.unreachable(self.url, exc) from exc
        return calls.finish(call, response)

    async def _all(self, pager: Pager[I]) -> AsyncIterator[I]:
        while not pager.done:
            for item in pager.take(await self.send(pager.next_call())):
                yield item

    # Tasks

    async def tasks_page(
        self, *, limit: int = 50, cursor: str | None = None, search: str | None = None
    ) -> bodies.TaskPage:
        """One page of tasks by name; pass ``next_cursor`` back as ``cursor``."""
        return await self.send(calls.tasks_page(limit, cursor, search))

    def iter_tasks(
        self, *, search: str | None = None, limit: int | None = None
    ) -> AsyncIterator[models.Task]:
        """Tasks by name, page after page (all of them unless ``limit``)."""
        return self._all(Pager(lambda size, cur: calls.tasks_page(size, cur, search), limit))

    async def list(
        self, *, search: str | None = None, limit: int | None = None
    ) -> builtins.list[models.Task]:
        """Tasks by name (all of them unless ``limit``), following the cursors."""
        return [task async for task in self.iter_tasks(search=search, limit=limit)]

    async def get(self, name: str) -> models.Task:
        """A task; ``TaskNotFound`` if none has that name."""
        return await self.send(calls.get_task(name))

    async def create(self, task: calls.TaskInput) -> models.Task:
        """Create a task from a ``TaskSpec`` or a dict of its fields."""
        return await self.send(calls.create_task(task))

    async def create_many(self, tasks: Sequence[calls.TaskInput]) -> builtins.list[models.Task]:
        """Create up to 500 tasks in one call: all of them, or none if any is refused."""
        return await self.send(calls.create_tasks(tasks))

    async def update(self, name: str, changes: Mapping[str, Any]) -> models.Task:
        """Change the given fields."""
        return await self.send(calls.update_task(name, changes))

    async def delete(self, name: str) -> None:
        """Delete a task and its waiting jobs."""
        await self.send(calls.delete_task(name))

    async def pause(self, name: str) -> models.Task:
        """Stop a task's schedule."""
        return await self.send(calls.pause_task(name))

    async def resume(self, name: str) -> models.Task:
        """Restart a task's schedule."""
        return await self.send(calls.resume_task(name))

    async def run(self, name: str, parameters: Mapping[str, Any] | None = None) -> models.Job:
        """Start a job now; the job."""
        return (await self.send(calls.run_task(name, parameters))).job

    async def schedule(self, name: str, at: dt.datetime) -> models.Job:
        """Add a one-off job at ``at``; the job."""
        return (await self.send(calls.schedule_task(name, at))).job

    async def add_jobs(
        self, name: str, jobs: models.NewJobs | Mapping[str, Any]
    ) -> models.AddedJobs:
        """Add up to 1,000 one-off jobs in one call (``models.NewJobs``: each job's ``at`` and
        ``parameters``, and a ``key`` that makes a repeat add nothing twice)."""
        return await self.send(calls.add_jobs(name, models.NewJobs.model_validate(jobs)))

    # Jobs

    async def jobs_page(
        self,
        *,
        task: str | None = None,
        state: models.JobState | str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> bodies.JobPage:
        """One page of jobs, newest first."""
        return await self.send(calls.jobs_page(task, state, limit, cursor))

    async def jobs(
        self,
        *,
        task: str | None = None,
        state: models.JobState | str | None = None,
        limit: int | None = 50,
    ) -> builtins.list[models.Job]:
        """Jobs newest first, up to ``limit`` (None: all), following the cursors."""
        pager = Pager(lambda size, cur: calls.jobs_page(task, state, size, cur), limit)
        return [item async for item in self._all(pager)]

    async def job(self, job_id: str) -> models.Job:
        """A job with its state timeline; ``JobNotFound`` if none has that id."""
        return await self.send(calls.get_job(job_id))

    async def logs(self, job_id: str, *, limit: int | None = None) -> builtins.list[models.LogLine]:
        """A job's log lines, oldest first."""
        return (await self.send(calls.job_logs(job_id, limit))).items

    async def cancel(self, job_id: str) -> models.Job:
        """Cancel a waiting or running job; ``JobAlreadyFinished`` once it has ended."""
        return await self.send(calls.cancel_job(job_id))

    async def reschedule(self, job_id: str, at: dt.datetime) -> models.Job:
        """Move a job that has not started; the job that replaces it."""
        return (await self.send(calls.reschedule_job(job_id, at))).job

    async def wait(
        self, job_id: str, *, timeout: float = 300.0, interval: float = 0.5
    ) -> models.Job:
        """Poll a job until it ends or ``timeout`` seconds pass, and return it (as the SDK's
        ``wait``: after the timeout the job is returned as it is, not final)."""
        deadline = time.monotonic() + timeout
        while True:
            job = await self.job(job_id)
            if job.state.is_final or time.monotonic() >= deadline:
                return job
            await asyncio.sleep(max(0.0, min(interval, deadline - time.monotonic())))

    # Schedules, tokens, audit, health

    async def preview(
        self,
        *,
        cron: str | None = None,
        every: str | None = None,
        at: str | dt.datetime | None = None,
        rrule: str | None = None,
        timezone: str | None = None,
        start: str | dt.datetime | None = None,
        end: str | dt.datetime | None = None,
        count: int | None = None,
    ) -> bodies.Preview:
        """The next ``count`` run times of a schedule (the task fields of the same names)."""
        call = calls.preview(
            cron=cron,
            every=every,
            at=at,
            rrule=rrule,
            timezone=timezone,
            start=start,
            end=end,
            count=count,
        )
        return await self.send(call)

    async def tokens(self) -> builtins.list[TokenInfo]:
        """Every token, revoked ones included (admin)."""
        return await self.send(calls.list_tokens())

    async def create_token(
        self,
        name: str,
        scope: Scope | str,
        *,
        pools: builtins.list[str] | None = None,
        secrets: builtins.list[str] | None = None,
    ) -> NewToken:
        """A new token, its secret shown in this answer only (admin)."""
        return await self.send(calls.create_token(name, scope, pools=pools, secrets=secrets))

    async def grant_token(
        self,
        token_id: str,
        *,
        pools: builtins.list[str] | None = None,
        secrets: builtins.list[str] | None = None,
    ) -> TokenInfo:
        """Replace a non-admin token's work pools, Secret blocks or both (admin)."""
        return await self.send(calls.grant_token(token_id, pools=pools, secrets=secrets))

    async def revoke_token(self, token_id: str) -> None:
        """Revoke a token for good (admin)."""
        await self.send(calls.revoke_token(token_id))

    async def audit_page(
        self,
        *,
        actor: str | None = None,
        task: str | None = None,
        action: str | None = None,
        since: dt.datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> bodies.AuditPage:
        """One page of the audit log, newest first; pass ``next_cursor`` back as ``cursor``."""
        call = calls.audit_page(
            actor=actor, task=task, action=action, since=since, limit=limit, cursor=cursor
        )
        return await self.send(call)

    async def audit(
        self,
        *,
        actor: str | None = None,
        task: str | None = None,
        action: str | None = None,
        since: dt.datetime | None = None,
        limit: int | None = 100,
    ) -> builtins.list[AuditEntry]:
        """Audit entries newest first, up to ``limit`` (None: all), following the cursors."""
        pager = Pager(
            lambda size, cur: calls.audit_page(
                actor=actor, task=task, action=action, since=since, limit=size, cursor=cur
            ),
            limit,
        )
        return [item async for item in self._all(pager)]

    async def status(self) -> Snapshot:
        """The platform's health as ``tasks status`` shows it (read)."""
        return await self.send(calls.status())

    async def health(self) -> bodies.Health:
        """Whether the Prefect server and the database answer (no token needed)."""
        return await self.send(calls.health())
