"""``Client``: the REST API with a token, blocking; the same method names as the SDK's
``TaskScheduler`` where the SDK has the call, and the same errors."""

from __future__ import annotations

import builtins
import datetime as dt
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from taskscheduler import declarative, errors, models
from taskscheduler.client import calls, transport
from taskscheduler.client.config import Config, resolve
from taskscheduler.client.paging import Pager
from taskscheduler.declarative import Applied
from taskscheduler.models.audit import AuditEntry
from taskscheduler.models.status import Snapshot
from taskscheduler.models.tokens import NewToken, Scope, TokenInfo
from taskscheduler.wire import bodies

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741


class Client:
    """The task scheduler's REST API (``/v1``) as typed calls.

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
        http_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config: Config = resolve(url, token, path=config_path)
        self._http = httpx.Client(
            base_url=self.config.url,
            headers=transport.headers(self.config),
            timeout=timeout,
            transport=http_transport,
        )

    @property
    def url(self) -> str:
        """The API's base URL."""
        return self.config.url

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def send(self, call: calls.Call[T]) -> T:
        """Send one call; its typed answer, or the error the answer stands for."""
        try:
            response = self._http.request(
                call.method, call.path, params=call.params, json=call.body
            )
        except httpx.TransportError as exc:
            raise transport.unreachable(self.url, exc) from exc
        return calls.finish(call, response)

    def _all(self, pager: Pager[I]) -> Iterator[I]:
        while not pager.done:
            yield from pager.take(self.send(pager.next_call()))

    # Tasks

    def tasks_page(
        self, *, limit: int = 50, cursor: str | None = None, search: str | None = None
    ) -> bodies.TaskPage:
        """One page of tasks by name; pass ``next_cursor`` back as ``cursor``."""
        return self.send(calls.tasks_page(limit, cursor, search))

    def iter_tasks(
        self, *, search: str | None = None, limit: int | None = None
    ) -> Iterator[models.Task]:
        """Tasks by name, page after page (all of them unless ``limit``)."""
        return self._all(Pager(lambda size, cur: calls.tasks_page(size, cur, search), limit))

    def list(
        self, *, search: str | None = None, limit: int | None = None
    ) -> builtins.list[models.Task]:
        """Tasks by name (all of them unless ``limit``), following the cursors."""
        return builtins.list(self.iter_tasks(search=search, limit=limit))

    def get(self, name: str) -> models.Task:
        """A task; ``TaskNotFound`` if none has that name."""
        return self.send(calls.get_task(name))

    def create(self, task: calls.TaskInput) -> models.Task:
        """Create a task from a ``TaskSpec`` or a dict of its fields."""
        return self.send(calls.create_task(task))

    def create_many(self, tasks: Sequence[calls.TaskInput]) -> builtins.list[models.Task]:
        """Create up to 500 tasks in one call: all of them, or none if any is refused."""
        return self.send(calls.create_tasks(tasks))

    def update(self, name: str, changes: Mapping[str, Any]) -> models.Task:
        """Change the given fields."""
        return self.send(calls.update_task(name, changes))

    def delete(self, name: str) -> None:
        """Delete a task and its waiting jobs."""
        self.send(calls.delete_task(name))

    def apply(self, path: Path | str) -> builtins.list[Applied]:
        """Create or update every task defined in a folder (or file) of task files, as the
        SDK's ``apply`` does (the new ones together, after the updates); idempotent."""
        results = []
        new: builtins.list[models.TaskSpec] = []
        for file, data in declarative.load(Path(path)):
            spec = models.build_spec(data)
            try:
                before = self.get(spec.name)
            except errors.TaskNotFound:
                new.append(spec)
                results.append(Applied(name=spec.name, action="created", file=str(file)))
                continue
            after = self.update(spec.name, declarative.replacing(before, spec))
            results.append(declarative.updated(before, after, file))
        for batch in declarative.batches(new):
            self.create_many(batch)
        return results

    def pause(self, name: str) -> models.Task:
        """Stop a task's schedule."""
        return self.send(calls.pause_task(name))

    def resume(self, name: str) -> models.Task:
        """Restart a task's schedule."""
        return self.send(calls.resume_task(name))

    def run(self, name: str, parameters: Mapping[str, Any] | None = None) -> models.Job:
        """Start a job now; the job."""
        return self.send(calls.run_task(name, parameters)).job

    def schedule(self, name: str, at: dt.datetime) -> models.Job:
        """Add a one-off job at ``at``; the job."""
        return self.send(calls.schedule_task(name, at)).job

    def add_jobs(self, name: str, jobs: models.NewJobs | Mapping[str, Any]) -> models.AddedJobs:
        """Add up to 1,000 one-off jobs in one call (``models.NewJobs``: each job's ``at`` and
        ``parameters``, and a ``key`` that makes a repeat add nothing twice)."""
        return self.send(calls.add_jobs(name, models.NewJobs.model_validate(jobs)))

    # Jobs

    def jobs_page(
        self,
        *,
        task: str | None = None,
        state: models.JobState | str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> bodies.JobPage:
        """One page of jobs, newest first."""
        return self.send(calls.jobs_page(task, state, limit, cursor))

    def jobs(
        self,
        *,
        task: str | None = None,
        state: models.JobState | str | None = None,
        limit: int | None = 50,
    ) -> builtins.list[models.Job]:
        """Jobs newest first, up to ``limit`` (None: all), following the cursors."""
        pager = Pager(lambda size, cur: calls.jobs_page(task, state, size, cur), limit)
        return builtins.list(self._all(pager))

    def job(self, job_id: str) -> models.Job:
        """A job with its state timeline; ``JobNotFound`` if none has that id."""
        return self.send(calls.get_job(job_id))

    def logs(self, job_id: str, *, limit: int | None = None) -> builtins.list[models.LogLine]:
        """A job's log lines, oldest first."""
        return self.send(calls.job_logs(job_id, limit)).items

    def cancel(self, job_id: str) -> models.Job:
        """Cancel a waiting or running job; ``JobAlreadyFinished`` once it has ended."""
        return self.send(calls.cancel_job(job_id))

    def reschedule(self, job_id: str, at: dt.datetime) -> models.Job:
        """Move a job that has not started; the job that replaces it."""
        return self.send(calls.reschedule_job(job_id, at)).job

    def wait(self, job_id: str, *, timeout: float = 300.0, interval: float = 0.5) -> models.Job:
        """Poll a job until it ends or ``timeout`` seconds pass, and return it (as the SDK's
        ``wait``: after the timeout the job is returned as it is, not final)."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job.state.is_final or time.monotonic() >= deadline:
                return job
            time.sleep(max(0.0, min(interval, deadline - time.monotonic())))

    # Schedules, tokens, audit, health

    def preview(
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
        return self.send(call)

    def tokens(self) -> builtins.list[TokenInfo]:
        """Every token, revoked ones included (admin)."""
        return self.send(calls.list_tokens())

    def create_token(
        self,
        name: str,
        scope: Scope | str,
        *,
        pools: builtins.list[str] | None = None,
        secrets: builtins.list[str] | None = None,
    ) -> NewToken:
        """A new token, its secret shown in this answer only (admin)."""
        return self.send(calls.create_token(name, scope, pools=pools, secrets=secrets))

    def grant_token(
        self,
        token_id: str,
        *,
        pools: builtins.list[str] | None = None,
        secrets: builtins.list[str] | None = None,
    ) -> TokenInfo:
        """Replace a non-admin token's work pools, Secret blocks or both (admin)."""
        return self.send(calls.grant_token(token_id, pools=pools, secrets=secrets))

    def revoke_token(self, token_id: str) -> None:
        """Revoke a token for good (admin)."""
        self.send(calls.revoke_token(token_id))

    def audit_page(
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
        return self.send(call)

    def audit(
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
        return builtins.list(self._all(pager))

    def status(self) -> Snapshot:
        """The platform's health as ``tasks status`` shows it (read)."""
        return self.send(calls.status())

    def health(self) -> bodies.Health:
        """Whether the Prefect server and the database answer (no token needed)."""
        return self.send(calls.health())
