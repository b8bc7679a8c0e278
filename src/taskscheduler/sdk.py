"""The Python SDK: every operation on tasks and jobs, async and sync, sharing one implementation.

    from taskscheduler import TaskScheduler
    with TaskScheduler() as ts:
        ts.create({"name": "hello", "code": "def main():\\n    print('hi')", "every": "1m"})
        job = ts.run("hello")

The CLI and the REST API are thin layers over ``AsyncTaskScheduler``, so all three behave the
same. The rules live in ``models``; the Prefect calls in ``_prefect``; what a caller may use
(work pools, Secret blocks) in ``grants``, checked here where every caller passes.
"""

from __future__ import annotations

import asyncio
import builtins
import contextvars
import datetime as dt
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from taskscheduler import _compensation, audit, declarative, errors, grants, models, policy, store
from taskscheduler._prefect import gateway
from taskscheduler._prefect.blocks import TaskCode
from taskscheduler.settings import Settings, get_settings

T = TypeVar("T")
P = ParamSpec("P")
TaskInput = models.TaskSpec | dict[str, Any]

PAST_GRACE = dt.timedelta(minutes=5)
# A task's "last job": the newest one that started, whatever became of it.
_LAST_JOB_STATES = [
    t
    for state in (
        models.JobState.RUNNING,
        models.JobState.COMPLETED,
        models.JobState.FAILED,
        models.JobState.CANCELLED,
    )
    for t in gateway.state_types(state)
]


class LogLine(BaseModel):
    """One line of a job's log."""

    timestamp: dt.datetime
    level: str
    logger: str
    message: str


class Applied(BaseModel):
    """What ``apply`` did with one task file."""

    name: str
    action: Literal["created", "updated", "unchanged"]
    file: str


_UNRESTRICTED = grants.UNRESTRICTED


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _spec(value: TaskInput) -> models.TaskSpec:
    return value if isinstance(value, models.TaskSpec) else models.build_spec(value)


# The audit entry of the call in progress, so a method can add what only it knows (the code
# hash before an update) without threading it through every signature.
_pending: contextvars.ContextVar[dict[str, str | None] | None] = contextvars.ContextVar(
    "taskscheduler_audit_pending", default=None
)
_log = logging.getLogger(__name__)


def _audited(
    action: str,
) -> Callable[
    [Callable[Concatenate[AsyncTaskScheduler, P], Awaitable[T]]],
    Callable[Concatenate[AsyncTaskScheduler, P], Awaitable[T]],
]:
    """Append one audit entry per call of a state-changing method, refused calls included."""

    def decorate(
        method: Callable[Concatenate[AsyncTaskScheduler, P], Awaitable[T]],
    ) -> Callable[Concatenate[AsyncTaskScheduler, P], Awaitable[T]]:
        async def call(self: AsyncTaskScheduler, /, *args: P.args, **kwargs: P.kwargs) -> T:
            fields: dict[str, str | None] = {"task": None, "job": None}
            fields["job" if action.startswith("job.") else "task"] = _target(
                args[0] if args else None
            )
            token = _pending.set(fields)
            try:
                result = await method(self, *args, **kwargs)
            except Exception as exc:
                try:
                    await self._record(action, audit.outcome_of(exc), fields, detail=str(exc))
                except Exception:  # noqa: BLE001 - the caller must see the original error
                    _log.exception("could not write the audit entry of a refused %s", action)
                raise
            finally:
                _pending.reset(token)
            if isinstance(result, models.Task):
                fields["task"] = result.name
                fields["code_sha256_after"] = result.code_sha256
            elif isinstance(result, models.Job):
                if fields["job"] is not None and fields["job"] != result.id:
                    fields["detail"] = f"replaced by job {result.id}"
                else:
                    fields["job"] = result.id
                fields["task"] = fields["task"] or result.task
            await self._record(action, "ok", fields)
            return result

        functools.update_wrapper(call, method)
        return call

    return decorate


def _target(value: object) -> str | None:
    """The task name or job id a call is about, from its first argument."""
    if isinstance(value, models.TaskSpec):
        return value.name
    if isinstance(value, dict):
        name = value.get("name")
        return name[:200] if isinstance(name, str) else None
    return value[:200] if isinstance(value, str) else None


def _note(**fields: str | None) -> None:
    """Add to the audit entry of the call in progress."""
    pending = _pending.get()
    if pending is not None:
        pending.update(fields)


class AsyncTaskScheduler:
    """Tasks and jobs on the platform, as coroutines.

    ``actor`` is who acts (default: the local user, as the SDK), ``grants`` which work pools and
    Secret blocks its tasks may use (default: every one, for code trusted in-process) and
    ``audit_sink`` where each state-changing call is recorded (default: the audit table of the
    platform's database); the REST API passes the token's identity and grants, its request id
    and its shared sink.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        actor: audit.Actor | None = None,
        grants: grants.Grants | None = None,
        audit_sink: audit.AuditSink | None = None,
        request_id: str | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self._gateway = gateway.Gateway(self.settings)
        self.actor = actor or audit.Actor.local(self.settings)
        self.grants = grants or _UNRESTRICTED
        self.request_id = request_id
        self._audit_sink = audit_sink
        self._owned_engine: AsyncEngine | None = None

    async def _record(
        self, action: str, outcome: str, fields: dict[str, str | None], detail: str | None = None
    ) -> None:
        if self._audit_sink is None:
            self._owned_engine = store.create_engine(self.settings, pooled=False)
            self._audit_sink = audit.DatabaseSink(self._owned_engine)
        values = dict(fields)
        if detail is not None:
            values["detail"] = detail
        entry = audit.AuditEntry.of(
            self.actor, action, outcome, request_id=self.request_id, **values
        )
        await self._audit_sink.record(entry)

    async def aclose(self) -> None:
        """Release the database engine of the default audit sink, if one was opened."""
        if self._owned_engine is not None:
            await self._owned_engine.dispose()
            self._owned_engine = None

    # ---- tasks -------------------------------------------------------------------------

    @_audited("task.create")
    async def create(self, task: TaskInput) -> models.Task:
        """Create a task: its first code version, its deployment and its upcoming jobs."""
        spec = _spec(task)
        spec.check_entrypoint(self.settings.project_dir)
        now = _now()
        _refuse_past_at(spec, now)
        plan = spec.schedule_plan(now)
        self.grants.check_new_pool(spec.pool, self.settings.default_pool)
        self.grants.check_secrets(spec.secrets.values())
        gw = self._gateway
        async with gw.session() as client:
            if await gw.exists(client, spec.name):
                raise errors.TaskAlreadyExists(spec.name)
            await gw.require_secrets(client, spec.secrets)
            # A create that fails part-way leaves nothing behind.
            async with _compensation.Compensation("task.create") as undo:
                document = await gw.save_version(client, _version_block(spec, 1))
                undo.push("code version", functools.partial(gw.delete_version, client, document))
                deployment_id = await gw.create_deployment(client, spec, 1, plan)
                undo.push(
                    "deployment", functools.partial(gw.delete_deployment, client, deployment_id)
                )
                if plan is not None:
                    await gw.schedule_now(client, deployment_id, _since(spec, now))
                return await self._read_task(client, spec.name, detail=True)

    async def get(self, name: str) -> models.Task:
        """A task with its schedule, next runs, last job and code versions."""
        async with self._gateway.session() as client:
            return await self._read_task(client, name, detail=True)

    async def list(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        search: str | None = None,
        with_runs: bool = False,
    ) -> builtins.list[models.Task]:
        """Tasks by name, one page; ``with_runs`` adds each task's next run and last job, read
        with a few queries per page rather than two per task."""
        gw = self._gateway
        async with gw.session() as client:
            deployments = await gw.list_deployments(
                client, limit=limit, offset=offset, search=search
            )
            blocks = await self._latest_blocks(client, deployments)
            tasks = [_summary(d, b) for d, b in zip(deployments, blocks, strict=True)]
            if with_runs:
                ids = [d.id for d in deployments]
                upcoming = await gw.first_runs(
                    client,
                    ids,
                    gateway.state_types(models.JobState.PENDING),
                    newest_first=False,
                )
                last = await gw.first_runs(client, ids, _LAST_JOB_STATES, newest_first=True)
                for task, deployment_id in zip(tasks, ids, strict=True):
                    if (run := upcoming.get(deployment_id)) and run.expected_start_time:
                        task.next_runs = [run.expected_start_time]
                    if run := last.get(deployment_id):
                        task.last_job = gateway.to_job(run, task.name)
            return tasks

    async def pools(self) -> builtins.list[str]:
        """The work pools of the platform this caller may choose for a task, sorted."""
        gw = self._gateway
        async with gw.session() as client:
            return self.grants.choosable(await gw.work_pool_names(client))

    @_audited("task.update")
    async def update(self, name: str, changes: dict[str, Any]) -> models.Task:
        """Change a task; future jobs follow the new definition, none lost, none doubled.

        Prefect drops the deployment's future auto-scheduled runs when it is updated; they are
        created again at once from the new schedule (same slots, same idempotency keys), and
        jobs scheduled by hand keep their time and arguments but take the new code and policy.
        """
        if "name" in changes and changes["name"] != name:
            raise errors.InvalidTask("name", "a task cannot be renamed; create a new one")
        gw = self._gateway
        async with gw.session() as client:
            deployment = await gw.find_deployment(client, name)
            self.grants.check_task_pool(name, deployment.work_pool_name)
            current, version = await self._current(client, deployment)
            _note(code_sha256_before=current.code_sha256)
            spec = current.merged(changes)
            self.grants.check_new_pool(spec.pool, self.settings.default_pool)
            self.grants.check_secrets(spec.secrets.values())
            if spec.secrets != current.secrets:
                await gw.require_secrets(client, spec.secrets)
            spec.check_entrypoint(self.settings.project_dir)
            if spec == current:
                return await self._read_task(client, name, detail=True)
            now = _now()
            schedule_changed = any(
                getattr(spec, f) != getattr(current, f)
                for f in ("cron", "every", "at", "rrule", "timezone", "start", "end")
            )
            if schedule_changed:
                _refuse_past_at(spec, now)
            plan = spec.schedule_plan(now)
            version += 1
            # A version the deployment never pointed at goes again: left behind, it would
            # take the next update's version number and fail it.
            async with _compensation.Compensation("task.update") as undo:
                document = await gw.save_version(client, _version_block(spec, version))
                undo.push("code version", functools.partial(gw.delete_version, client, document))
                await gw.update_deployment(client, deployment, spec, version, plan)
            await gw.refresh_manual_runs(
                client,
                deployment.id,
                gateway.flow_parameters(current, version - 1),
                gateway.flow_parameters(spec, version),
            )
            if plan is not None and not deployment.paused:
                await gw.schedule_now(client, deployment.id, _since(spec, now))
            return await self._read_task(client, name, detail=True)

    @_audited("task.delete")
    async def delete(self, name: str) -> None:
        """Delete a task and its waiting jobs; finished jobs stay in Prefect's history."""
        gw = self._gateway
        async with gw.session() as client:
            deployment = await gw.find_deployment(client, name)
            await gw.delete_deployment(client, deployment.id)
            await gw.delete_versions(client, name)

    @_audited("task.pause")
    async def pause(self, name: str) -> models.Task:
        """Stop the task's schedule; waiting auto-scheduled jobs are removed."""
        gw = self._gateway
        async with gw.session() as client:
            deployment = await gw.find_deployment(client, name)
            await gw.pause(client, deployment.id)
            return await self._read_task(client, name, detail=True)

    @_audited("task.resume")
    async def resume(self, name: str) -> models.Task:
        """Restart the task's schedule from now on (missed ticks are not run)."""
        gw = self._gateway
        async with gw.session() as client:
            deployment = await gw.find_deployment(client, name)
            await gw.resume(client, deployment.id)
            if deployment.schedules:
                await gw.schedule_now(client, deployment.id, _now())
            return await self._read_task(client, name, detail=True)

    async def apply(self, path: Path | str) -> builtins.list[Applied]:
        """Create or update every task defined in a folder (or file); idempotent."""
        results = []
        for file, data in declarative.load(Path(path)):
            spec = models.build_spec(data)
            try:
                before = await self.get(spec.name)
            except errors.TaskNotFound:
                await self.create(spec)
                results.append(Applied(name=spec.name, action="created", file=str(file)))
                continue
            if before.spec is None:
                raise errors.InvalidTask(
                    "name", f"{spec.name!r} is a deployment this platform did not create"
                )
            after = await self.update(spec.name, _full_changes(spec))
            action: Literal["updated", "unchanged"] = (
                "unchanged" if after.version == before.version else "updated"
            )
            results.append(Applied(name=spec.name, action=action, file=str(file)))
        return results

    # ---- jobs --------------------------------------------------------------------------

    @_audited("task.schedule")
    async def schedule(self, name: str, at: dt.datetime) -> models.Job:
        """Add a one-off job of a task at ``at``."""
        gw = self._gateway
        async with gw.session() as client:
            deployment = await gw.find_deployment(client, name)
            self.grants.check_task_pool(name, deployment.work_pool_name)
            spec, _ = await self._current(client, deployment, required=False)
            at = _sane_when(at)
            _refuse_outside_window(spec, at, field="at")
            run = await gw.create_run(client, deployment.id, at=at, parameters=None)
            return gateway.to_job(run, name)

    @_audited("task.run")
    async def run(self, name: str, parameters: dict[str, Any] | None = None) -> models.Job:
        """Start a job of a task now, optionally with other arguments."""
        gw = self._gateway
        now = _now()
        async with gw.session() as client:
            deployment = await gw.find_deployment(client, name)
            self.grants.check_task_pool(name, deployment.work_pool_name)
            spec, _ = await self._current(client, deployment, required=False)
            _refuse_outside_window(spec, now, field="run")
            overrides = None
            if parameters:
                merged = {**deployment.parameters.get("parameters", {}), **parameters}
                if spec is not None:
                    spec.merged({"parameters": merged}).check_entrypoint(self.settings.project_dir)
                overrides = {"parameters": merged}
            run = await gw.create_run(client, deployment.id, at=now, parameters=overrides)
            return gateway.to_job(run, name)

    @_audited("job.reschedule")
    async def reschedule(self, job_id: str, at: dt.datetime) -> models.Job:
        """Move a job that has not started to another time; returns the job that replaces it."""
        at = _sane_when(at)
        gw = self._gateway
        async with gw.session() as client:
            run = await gw.read_run(client, job_id)
            if run.deployment_id is not None and not self.grants.unrestricted:
                # The job that replaces it is a new run of the task, in the task's pool now.
                deployment = await gw.read_deployment(client, run.deployment_id)
                self.grants.check_task_pool(deployment.name, deployment.work_pool_name)
            new = await gw.move(client, run, at)
            return await self._read_job(client, str(new.id))

    @_audited("job.cancel")
    async def cancel(self, job_id: str) -> models.Job:
        """Cancel a waiting job, or stop a running one (its worker kills it)."""
        gw = self._gateway
        async with gw.session() as client:
            run = await gw.read_run(client, job_id)
            await gw.cancel(client, run)
            return await self._read_job(client, job_id)

    async def jobs(
        self,
        *,
        task: str | None = None,
        state: models.JobState | str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[models.Job]:
        """Jobs, newest scheduled time first, optionally of one task and in one state."""
        gw = self._gateway
        async with gw.session() as client:
            deployment_id = (await gw.find_deployment(client, task)).id if task else None
            states = gateway.state_types(_job_state(state)) if state else None
            runs = await gw.read_runs(
                client, deployment_id=deployment_id, states=states, limit=limit, offset=offset
            )
            names = await gw.deployment_names(
                client, {r.deployment_id for r in runs if r.deployment_id}
            )
            return [
                gateway.to_job(r, names.get(r.deployment_id) if r.deployment_id else None)
                for r in runs
            ]

    async def job(self, job_id: str) -> models.Job:
        """A job with its state timeline and attempts."""
        async with self._gateway.session() as client:
            return await self._read_job(client, job_id)

    async def logs(self, job_id: str, *, limit: int | None = None) -> builtins.list[LogLine]:
        """What a job's code printed and logged, and Prefect's own lines about it."""
        gw = self._gateway
        async with gw.session() as client:
            run = await gw.read_run(client, job_id)
            return [
                LogLine(
                    timestamp=line.timestamp,
                    level=_level_name(line.level),
                    logger=line.name,
                    message=line.message,
                )
                for line in await gw.read_logs(client, run.id, limit=limit)
            ]

    async def wait(
        self, job_id: str, *, timeout: float = 300.0, interval: float = 0.5
    ) -> models.Job:
        """Poll a job until it ends (or ``timeout`` seconds pass) and return it."""
        deadline = time.monotonic() + timeout
        while True:
            job = await self.job(job_id)
            if job.state.is_final or time.monotonic() > deadline:
                return job
            await asyncio.sleep(interval)

    async def job_counts(self) -> dict[models.JobState, int]:
        """How many jobs are in each state (for metrics)."""
        gw = self._gateway
        async with gw.session() as client:
            return {
                state: await gw.count_runs(client, gateway.state_types(state))
                for state in models.JobState
            }

    async def health(self) -> None:
        """Raise ``PlatformUnavailable`` unless the Prefect server answers healthy."""
        async with self._gateway.session() as client:
            await self._gateway.check_health(client)

    # ---- reading ---------------------------------------------------------------------------

    async def _current(
        self, client: Any, deployment: Any, *, required: bool = True
    ) -> tuple[models.TaskSpec, int]:
        """The task's definition from its latest code version."""
        block = await self._latest_block(client, deployment)
        if block is None:
            if required:
                raise errors.InvalidTask(
                    "name",
                    f"{deployment.name!r} was not created by this platform; "
                    "change it where it was defined (prefect deploy)",
                )
            return None, 0  # type: ignore[return-value]
        return _spec_from_block(block), block.version

    async def _latest_block(self, client: Any, deployment: Any) -> TaskCode | None:
        return (await self._latest_blocks(client, [deployment]))[0]

    async def _latest_blocks(
        self, client: Any, deployments: builtins.list[Any]
    ) -> builtins.list[TaskCode | None]:
        """The current code version of each deployment this platform made (None for the
        others), read in one call rather than one per task."""
        flow_id = await self._gateway._flow_id(client)
        names = {
            d.id: policy.code_document(d.name, version)
            for d in deployments
            if d.flow_id == flow_id and (version := _version_of(d.version)) is not None
        }
        found = await self._gateway.read_versions_named(client, builtins.list(names.values()))
        return [found.get(names[d.id]) if d.id in names else None for d in deployments]

    async def _read_task(self, client: Any, name: str, *, detail: bool) -> models.Task:
        deployment = await self._gateway.find_deployment(client, name)
        return await self._to_task(client, deployment, detail=detail)

    async def _to_task(self, client: Any, deployment: Any, *, detail: bool) -> models.Task:
        block = await self._latest_block(client, deployment)
        task = _summary(deployment, block)
        if detail:
            await self._add_detail(client, deployment, task, block)
        return task

    async def _add_detail(
        self, client: Any, deployment: Any, task: models.Task, block: TaskCode | None
    ) -> None:
        """The next five runs, the last job and every code version of one task."""
        gw = self._gateway
        upcoming = await gw.read_runs(
            client,
            deployment_id=deployment.id,
            states=gateway.state_types(models.JobState.PENDING),
            newest_first=False,
            limit=5,
        )
        task.next_runs = [r.expected_start_time for r in upcoming if r.expected_start_time]
        last = await gw.read_runs(
            client, deployment_id=deployment.id, states=_LAST_JOB_STATES, limit=1
        )
        task.last_job = gateway.to_job(last[0], deployment.name) if last else None
        if block is not None:
            task.versions = [
                models.CodeVersion(version=b.version, sha256=b.sha256)
                for b in await gw.read_versions(client, deployment.name)
            ]

    async def _read_job(self, client: Any, job_id: str) -> models.Job:
        gw = self._gateway
        run = await gw.read_run(client, job_id)
        names = await gw.deployment_names(
            client, {run.deployment_id} if run.deployment_id else set()
        )
        return gateway.to_job(
            run,
            names.get(run.deployment_id) if run.deployment_id else None,
            states=await gw.read_states(client, run.id),
            attempts=await gw.attempts(client, run),
        )


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

    def logs(self, job_id: str, *, limit: int | None = None) -> builtins.list[LogLine]:
        """See ``AsyncTaskScheduler.logs``."""
        return self._run(self.aio.logs, job_id, limit=limit)

    def wait(self, job_id: str, *, timeout: float = 300.0, interval: float = 0.5) -> models.Job:
        """See ``AsyncTaskScheduler.wait``."""
        return self._run(self.aio.wait, job_id, timeout=timeout, interval=interval)

    def health(self) -> None:
        """See ``AsyncTaskScheduler.health``."""
        self._run(self.aio.health)


# ---- helpers ---------------------------------------------------------------------------------


def _version_block(spec: models.TaskSpec, version: int) -> TaskCode:
    return TaskCode(
        task=spec.name,
        version=version,
        sha256=spec.code_sha256,
        source=spec.code,
        entrypoint=spec.entrypoint,
        entry=spec.entry,
        definition=spec.model_dump(mode="json", exclude={"code"}),
    )


def _spec_from_block(block: TaskCode) -> models.TaskSpec:
    return models.TaskSpec.model_validate(
        {**block.definition, "code": block.source}, context=models.STORED
    )


def _full_changes(spec: models.TaskSpec) -> dict[str, Any]:
    """Every field of a spec as a change set, so an applied file replaces the definition."""
    return dict(spec)


def _summary(deployment: Any, block: TaskCode | None) -> models.Task:
    """A task as its deployment and current code version describe it (no run read)."""
    spec = _spec_from_block(block) if block else None
    return models.Task(
        id=str(deployment.id),
        deployment_id=str(deployment.id),
        name=deployment.name,
        flow=policy.FLOW_NAME if block else str(deployment.flow_id),
        managed=block is not None,
        spec=spec,
        schedule=spec.describe() if spec else gateway.describe_schedules(deployment),
        paused=deployment.paused,
        pool=deployment.work_pool_name,
        tags=list(deployment.tags),
        version=block.version if block else None,
        code_sha256=block.sha256 if block else None,
        created=deployment.created,
        updated=deployment.updated,
    )


def _version_of(text: str | None) -> int | None:
    if text and text.startswith("v") and text[1:].isdigit():
        return int(text[1:])
    return None


def _since(spec: models.TaskSpec, now: dt.datetime) -> dt.datetime:
    """From when to create runs now: a one-off a little in the past still gets its run."""
    return min(spec.at, now) if spec.at is not None else now


def _refuse_past_at(spec: models.TaskSpec, now: dt.datetime) -> None:
    if spec.at is not None and spec.at < now - PAST_GRACE:
        raise errors.InvalidSchedule("at", f"{spec.at.isoformat()} is in the past")


def _sane_when(at: dt.datetime) -> dt.datetime:
    """A job time in UTC when it has no zone; refused when far off or minutes in the past."""
    at = at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
    models.check_time(at, "at")
    if at < _now() - PAST_GRACE:
        raise errors.InvalidSchedule("at", f"{at.isoformat()} is in the past")
    return at


def _refuse_outside_window(spec: models.TaskSpec | None, when: dt.datetime, *, field: str) -> None:
    """No job of a task is ever created outside its start/end window."""
    if spec is None:
        return
    if spec.start is not None and when < spec.start:
        raise errors.InvalidSchedule(field, f"the task starts at {spec.start.isoformat()}")
    if spec.end is not None and when > spec.end:
        raise errors.InvalidSchedule(field, f"the task ended at {spec.end.isoformat()}")


def _job_state(state: models.JobState | str) -> models.JobState:
    try:
        return models.JobState(state)
    except ValueError:
        choices = ", ".join(s.value for s in models.JobState)
        raise errors.InvalidTask(
            "state", f"unknown state {state!r}; use one of {choices}"
        ) from None


def _level_name(level: int) -> str:
    import logging

    return logging.getLevelName(level)


__all__ = ["Applied", "AsyncTaskScheduler", "LogLine", "TaskScheduler"]
