"""Tasks ↔ deployments and jobs ↔ flow runs, through Prefect's client (the wing's main room).

Prefect's client API moves between releases; keeping every call here keeps that blast radius
small, and lets the domain model be tested without a server. Prefect's exceptions are turned
into ``errors`` here; nothing Prefect-typed leaves this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import re
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas import filters, objects, sorting
from prefect.client.schemas.actions import DeploymentScheduleCreate, DeploymentUpdate
from prefect.client.schemas.responses import DeploymentResponse, OrchestrationResult
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.settings import (
    PREFECT_API_AUTH_STRING,
    PREFECT_API_KEY,
    PREFECT_API_URL,
    temporary_settings,
)
from prefect.settings.legacy import Setting
from prefect.states import Cancelled, Cancelling, Scheduled

from taskscheduler import credentials, errors, models, schedules
from taskscheduler._prefect import automations, docker_pool, rest
from taskscheduler._prefect.blocks import TaskCode
from taskscheduler.policy import FLOW_ENTRYPOINT, FLOW_NAME, JobParameters, code_document
from taskscheduler.settings import DEFAULT_API_URL, Settings

PAGE = 200

_STATE_SUMMARY = {
    objects.StateType.SCHEDULED: models.JobState.PENDING,
    objects.StateType.PENDING: models.JobState.PENDING,
    objects.StateType.PAUSED: models.JobState.PENDING,
    objects.StateType.RUNNING: models.JobState.RUNNING,
    objects.StateType.CANCELLING: models.JobState.RUNNING,
    objects.StateType.COMPLETED: models.JobState.COMPLETED,
    objects.StateType.FAILED: models.JobState.FAILED,
    objects.StateType.CRASHED: models.JobState.FAILED,
    objects.StateType.CANCELLED: models.JobState.CANCELLED,
}
_STATE_TYPES = {
    summary: [t for t, s in _STATE_SUMMARY.items() if s is summary] for summary in models.JobState
}


def api_url() -> str:
    """The Prefect API our SDK talks to: Prefect's own ``PREFECT_API_URL`` (env or profile)."""
    return PREFECT_API_URL.value() or DEFAULT_API_URL


async def server_health(*, timeout: float) -> tuple[bool, str | None]:
    """Whether the Prefect API of ``api_url()`` answers its health check, and why not."""
    auth = PREFECT_API_AUTH_STRING.value()
    headers = rest.auth_headers(auth, None)
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(f"{api_url()}/health", headers=headers)
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__}: {exc}"
    if response.status_code != 200:
        return False, f"HTTP {response.status_code}"
    return True, None


class Gateway:
    """Prefect operations in the platform's terms, over one client per ``session()``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = api_url()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[PrefectClient]:
        """An open Prefect client; connection failures become ``PlatformUnavailable``."""
        # Prefect's own setting first; else the secret `make up` generated for this platform.
        auth_string = PREFECT_API_AUTH_STRING.value() or credentials.prefect_auth_string(
            self.settings
        )
        client = PrefectClient(self.url, api_key=PREFECT_API_KEY.value(), auth_string=auth_string)
        # Prefect's helpers behind the client (block loads emit events, for one) read Prefect's
        # settings, not the client: without this, an unset PREFECT_API_URL makes them start an
        # ephemeral in-process server.
        updates: dict[Setting, Any] = {PREFECT_API_URL: self.url}
        if auth_string:
            updates[PREFECT_API_AUTH_STRING] = auth_string
        try:
            with temporary_settings(updates=updates):
                async with client:
                    yield client
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise errors.PlatformUnavailable(
                f"cannot reach the Prefect server at {self.url}: is the platform up (make up)?"
            ) from exc

    # ---- tasks ↔ deployments -------------------------------------------------------------

    async def find_deployment(self, client: PrefectClient, name: str) -> DeploymentResponse:
        """The deployment named ``name`` (ours first, when another flow has one too)."""
        found = await client.read_deployments(
            deployment_filter=filters.DeploymentFilter(
                name=filters.DeploymentFilterName(any_=[name])
            )
        )
        if not found:
            raise errors.TaskNotFound(name)
        if len(found) > 1:
            ours = await self._flow_id(client)
            found = [d for d in found if d.flow_id == ours] or found
        return found[0]

    async def read_deployment(
        self, client: PrefectClient, deployment_id: uuid.UUID
    ) -> DeploymentResponse:
        """The deployment of a job, by id."""
        try:
            return await client.read_deployment(deployment_id)
        except ObjectNotFound:
            raise errors.TaskNotFound(str(deployment_id)) from None

    async def work_pool_names(self, client: PrefectClient) -> list[str]:
        """The names of every work pool on the server."""
        return [pool.name for pool in await client.read_work_pools()]

    async def exists(self, client: PrefectClient, name: str) -> bool:
        """Whether any deployment is named ``name``."""
        try:
            await self.find_deployment(client, name)
        except errors.TaskNotFound:
            return False
        return True

    async def list_deployments(
        self, client: PrefectClient, *, limit: int, offset: int, search: str | None = None
    ) -> list[DeploymentResponse]:
        """Deployments sorted by name, one page of any size (read in Prefect's largest pages)."""
        name_filter = filters.DeploymentFilterName(like_=search) if search else None
        found: list[DeploymentResponse] = []
        while True:
            want = min(PAGE, limit - len(found))
            page = await client.read_deployments(
                deployment_filter=filters.DeploymentFilter(name=name_filter) if search else None,
                sort=sorting.DeploymentSort.NAME_ASC,
                limit=want,
                offset=offset + len(found),
            )
            found.extend(page)
            if len(page) < want or len(found) >= limit:
                return found

    async def save_version(self, client: PrefectClient, block: TaskCode) -> uuid.UUID:
        """Store one version of a task's code (block documents are immutable once written);
        returns the document's id."""
        return await block.asave(code_document(block.task, block.version), client=client)

    async def delete_version(self, client: PrefectClient, document_id: uuid.UUID) -> None:
        """Remove one stored version (taking back a write that failed part-way)."""
        with contextlib.suppress(ObjectNotFound):
            await client.delete_block_document(document_id)

    async def read_versions(self, client: PrefectClient, task: str) -> list[TaskCode]:
        """Every stored version of a task, oldest first."""
        documents = await self._version_documents(client, task)
        blocks = [TaskCode.model_validate(d.data) for d in documents]
        return sorted((b for b in blocks if b.task == task), key=lambda b: b.version)

    async def read_versions_named(
        self, client: PrefectClient, names: Sequence[str]
    ) -> dict[str, TaskCode]:
        """Stored versions by document name (those that exist), one call per page of names."""
        found: dict[str, TaskCode] = {}
        for start in range(0, len(names), PAGE):
            response = await client.request(
                "POST",
                "/block_documents/filter",
                json={
                    "block_documents": {"name": {"any_": list(names[start : start + PAGE])}},
                    "block_types": {"slug": {"any_": [TaskCode.get_block_type_slug()]}},
                    "limit": PAGE,
                },
            )
            for document in objects.BlockDocument.model_validate_list(response.json()):
                if document.name is not None:
                    found[document.name] = TaskCode.model_validate(document.data)
        return found

    async def delete_versions(self, client: PrefectClient, task: str) -> None:
        """Remove every stored version of a task (when the task is deleted)."""
        for document in await self._version_documents(client, task):
            if document.data.get("task") == task:
                await client.delete_block_document(document.id)

    async def _version_documents(
        self, client: PrefectClient, task: str
    ) -> list[objects.BlockDocument]:
        """The task-code documents named like ``<task>-v…`` (the client has no such filter)."""
        documents: list[objects.BlockDocument] = []
        while True:
            response = await client.request(
                "POST",
                "/block_documents/filter",
                json={
                    "block_documents": {"name": {"like_": f"{task}-v%"}},
                    "block_types": {"slug": {"any_": [TaskCode.get_block_type_slug()]}},
                    "limit": PAGE,
                    "offset": len(documents),
                },
            )
            page = objects.BlockDocument.model_validate_list(response.json())
            documents.extend(page)
            if len(page) < PAGE:
                return documents

    async def create_deployment(
        self,
        client: PrefectClient,
        spec: models.TaskSpec,
        version: int,
        plan: schedules.Plan | None,
    ) -> uuid.UUID:
        """Create the task's deployment of the generic flow, with its schedule."""
        pool = spec.pool or self.settings.default_pool
        await self._require_pool(client, pool)
        await automations.route_tasks(client, spec.notify)
        with _pool_bounds():
            return await client.create_deployment(
                flow_id=await self._flow_id(client),
                name=spec.name,
                version=f"v{version}",
                description=spec.description or None,
                entrypoint=FLOW_ENTRYPOINT,
                parameters=flow_parameters(spec, version),
                parameter_openapi_schema=_flow_parameter_schema(),
                schedules=_schedule_create(plan),
                work_pool_name=pool,
                tags=deployment_tags(spec),
                concurrency_limit=spec.concurrency,
                concurrency_options=_concurrency_options(spec),
                pull_steps=[self._pull_step(pool)],
                job_variables=self._job_variables(spec, pool),
                enforce_parameter_schema=False,
                paused=False,
            )

    async def update_deployment(
        self,
        client: PrefectClient,
        deployment: DeploymentResponse,
        spec: models.TaskSpec,
        version: int,
        plan: schedules.Plan | None,
    ) -> None:
        """Point the deployment at a new version; Prefect drops its future auto-scheduled runs."""
        pool = spec.pool or self.settings.default_pool
        await self._require_pool(client, pool)
        await automations.route_tasks(client, spec.notify)
        update = DeploymentUpdate(
            version=f"v{version}",
            description=spec.description or None,
            parameters=flow_parameters(spec, version),
            schedules=[s.model_dump(exclude_unset=True) for s in _schedule_create(plan)],
            tags=deployment_tags(spec),
            work_pool_name=pool,
            concurrency_limit=spec.concurrency,
            concurrency_options=_concurrency_options(spec),
            pull_steps=[self._pull_step(pool)],
            job_variables=self._job_variables(spec, pool),
        )
        with _pool_bounds():
            await client.update_deployment(deployment.id, update)

    async def schedule_now(
        self, client: PrefectClient, deployment_id: uuid.UUID, since: dt.datetime
    ) -> None:
        """Ask Prefect's scheduler to create the deployment's upcoming runs right away.

        The scheduler service would do it within its loop interval; doing it now means runs
        due in the next seconds are not missed. Prefect's idempotency keys make it safe to
        race with the service.
        """
        response = await client.request(
            "POST",
            "/deployments/{id}/schedule",
            path_params={"id": deployment_id},
            json={"start_time": since.isoformat()},
        )
        response.raise_for_status()

    async def refresh_manual_runs(
        self,
        client: PrefectClient,
        deployment_id: uuid.UUID,
        old: dict[str, Any],
        new: dict[str, Any],
    ) -> int:
        """Give waiting, manually scheduled jobs the new definition; keep their own arguments."""
        runs = await self.read_runs(
            client,
            deployment_id=deployment_id,
            states=[objects.StateType.SCHEDULED],
            auto_scheduled=False,
            limit=None,
        )
        for run in runs:
            parameters = dict(new)
            if run.parameters.get("parameters") != old.get("parameters"):
                parameters["parameters"] = run.parameters.get("parameters")
            await client.update_flow_run(run.id, parameters=parameters)
        return len(runs)

    async def require_secrets(self, client: PrefectClient, secrets: dict[str, str]) -> None:
        """Refuse a task that names a Secret block that does not exist (values are not read)."""
        for env, block in sorted(secrets.items()):
            try:
                await client.read_block_document_by_name(
                    block, block_type_slug="secret", include_secrets=False
                )
            except ObjectNotFound:
                raise errors.InvalidTask(
                    f"secrets.{env}", f"no Secret block named {block!r}"
                ) from None

    async def pause(self, client: PrefectClient, deployment_id: uuid.UUID) -> None:
        """Stop creating runs; Prefect deletes the auto-scheduled ones still waiting."""
        await client.pause_deployment(deployment_id)

    async def resume(self, client: PrefectClient, deployment_id: uuid.UUID) -> None:
        """Start creating runs again."""
        await client.resume_deployment(deployment_id)

    async def delete_deployment(self, client: PrefectClient, deployment_id: uuid.UUID) -> None:
        """Delete the deployment; Prefect deletes its scheduled runs and keeps finished ones."""
        await client.delete_deployment(deployment_id)

    # ---- jobs ↔ flow runs ----------------------------------------------------------------

    async def create_run(
        self,
        client: PrefectClient,
        deployment_id: uuid.UUID,
        *,
        at: dt.datetime,
        parameters: dict[str, Any] | None,
    ) -> objects.FlowRun:
        """One job of a task, due at ``at``."""
        return await client.create_flow_run_from_deployment(
            deployment_id, parameters=parameters, state=Scheduled(scheduled_time=at)
        )

    async def read_run(self, client: PrefectClient, job_id: str) -> objects.FlowRun:
        """The flow run of a job id."""
        try:
            run_id = uuid.UUID(job_id)
        except ValueError:
            raise errors.JobNotFound(job_id) from None
        try:
            return await client.read_flow_run(run_id)
        except ObjectNotFound:
            raise errors.JobNotFound(job_id) from None

    async def read_runs(
        self,
        client: PrefectClient,
        *,
        deployment_id: uuid.UUID | None = None,
        states: Sequence[objects.StateType] | None = None,
        auto_scheduled: bool | None = None,
        flow_only: bool = True,
        newest_first: bool = True,
        limit: int | None = 50,
        offset: int = 0,
    ) -> list[objects.FlowRun]:
        """Flow runs of deployments, newest first; ``limit=None`` reads them all.

        Prefect's filter has no ``auto_scheduled`` criterion, so that one is applied here.
        """
        run_filter = _run_filter([deployment_id] if deployment_id else None, states, flow_only)
        sort = _run_sort(newest_first)
        runs: list[objects.FlowRun] = []
        read = 0  # rows read from the server, before the auto_scheduled filter
        while True:
            want = min(PAGE, limit - len(runs)) if limit else PAGE
            page = await client.read_flow_runs(
                flow_run_filter=run_filter, sort=sort, limit=want, offset=offset + read
            )
            read += len(page)
            runs.extend(
                r for r in page if auto_scheduled is None or r.auto_scheduled is auto_scheduled
            )
            if len(page) < want or (limit and len(runs) >= limit):
                return runs[:limit] if limit else runs

    async def first_runs(
        self,
        client: PrefectClient,
        deployment_ids: Sequence[uuid.UUID],
        states: Sequence[objects.StateType],
        *,
        newest_first: bool,
    ) -> dict[uuid.UUID, objects.FlowRun]:
        """Each deployment's first flow run in ``states`` (newest or soonest), for a page of
        tasks: one query for all, then one per deployment that busier ones crowded out of it."""
        if not deployment_ids:
            return {}
        page = await client.read_flow_runs(
            flow_run_filter=_run_filter(deployment_ids, states, flow_only=True),
            sort=_run_sort(newest_first),
            limit=PAGE,
        )
        found: dict[uuid.UUID, objects.FlowRun] = {}
        for run in page:
            if run.deployment_id is not None:
                found.setdefault(run.deployment_id, run)
        if len(page) < PAGE:  # every such run was read: a deployment missing has none
            return found
        missing = [i for i in deployment_ids if i not in found]
        singles = await asyncio.gather(
            *(
                self.read_runs(
                    client, deployment_id=i, states=states, newest_first=newest_first, limit=1
                )
                for i in missing
            )
        )
        found.update({i: runs[0] for i, runs in zip(missing, singles, strict=True) if runs})
        return found

    async def count_runs(self, client: PrefectClient, states: Sequence[objects.StateType]) -> int:
        """How many flow runs of deployments are in one of ``states``."""
        return await client.count_flow_runs(
            flow_run_filter=filters.FlowRunFilter(
                deployment_id=filters.FlowRunFilterDeploymentId(is_null_=False),
                state=filters.FlowRunFilterState(
                    type=filters.FlowRunFilterStateType(any_=list(states))
                ),
            )
        )

    async def read_states(self, client: PrefectClient, run_id: uuid.UUID) -> list[objects.State]:
        """Every state a flow run went through, oldest first."""
        states = await client.read_flow_run_states(run_id)
        return sorted(states, key=lambda s: s.timestamp)

    async def attempts(self, client: PrefectClient, run: objects.FlowRun) -> int:
        """How many times the user's code was started in this job.

        On the process and docker lanes that is the run count of the task run wrapping the code;
        the fast lane runs code without task runs and counts attempts on the flow run itself.
        """
        task_runs = await client.read_task_runs(
            flow_run_filter=filters.FlowRunFilter(id=filters.FlowRunFilterId(any_=[run.id]))
        )
        return max((t.run_count for t in task_runs), default=run.run_count)

    async def move(
        self, client: PrefectClient, run: objects.FlowRun, at: dt.datetime
    ) -> objects.FlowRun:
        """Replace a waiting job by a new one at ``at``; refuse once it has started.

        Prefect keeps a flow run's expected start time from its creation, so moving a run
        in place would leave every delay figure measured from the old time. Instead the new
        run takes the old one's arguments and the old one is cancelled with a note naming its
        successor; cancelling (not deleting) keeps the scheduler from re-creating its slot.
        """
        if run.state_type is not objects.StateType.SCHEDULED or run.deployment_id is None:
            raise errors.JobAlreadyStarted(str(run.id), _state_name(run))
        new = await self.create_run(
            client, run.deployment_id, at=at, parameters=dict(run.parameters)
        )
        result: OrchestrationResult[Any] = await client.set_flow_run_state(
            run.id, Cancelled(message=f"Rescheduled to {at.isoformat()} as job {new.id}")
        )
        current = await client.read_flow_run(run.id)
        if result.status.value != "ACCEPT" or current.state_type is not objects.StateType.CANCELLED:
            await client.delete_flow_run(new.id)
            raise errors.JobAlreadyStarted(str(run.id), _state_name(current))
        return new

    async def cancel(self, client: PrefectClient, run: objects.FlowRun) -> None:
        """Cancel a job: a waiting one at once, a running one through its worker (Cancelling)."""
        summary = summarise(run.state_type)
        if summary.is_final:
            raise errors.JobAlreadyFinished(str(run.id), _state_name(run))
        running = run.state_type in (objects.StateType.RUNNING, objects.StateType.CANCELLING)
        state: objects.State[Any] = (
            Cancelling(message="Cancelled by user")
            if running
            else Cancelled(message="Cancelled by user")
        )
        result = await client.set_flow_run_state(run.id, state, force=True)
        if result.status.value != "ACCEPT":
            raise errors.JobAlreadyFinished(str(run.id), _state_name(run))

    async def read_logs(
        self, client: PrefectClient, run_id: uuid.UUID, *, limit: int | None = None
    ) -> list[objects.Log]:
        """A job's log lines (flow run and its task runs), oldest first."""
        log_filter = filters.LogFilter(flow_run_id=filters.LogFilterFlowRunId(any_=[run_id]))
        logs: list[objects.Log] = []
        while True:
            page = await client.read_logs(
                log_filter=log_filter,
                limit=PAGE,
                offset=len(logs),
                sort=sorting.LogSort.TIMESTAMP_ASC,
            )
            logs.extend(page)
            if len(page) < PAGE or (limit and len(logs) >= limit):
                return logs[:limit] if limit else logs

    async def deployment_names(
        self, client: PrefectClient, ids: set[uuid.UUID]
    ) -> dict[uuid.UUID, str]:
        """Names of deployments by id (to name the task of each job)."""
        if not ids:
            return {}
        found = await client.read_deployments(
            deployment_filter=filters.DeploymentFilter(
                id=filters.DeploymentFilterId(any_=list(ids))
            )
        )
        return {d.id: d.name for d in found}

    async def check_health(self, client: PrefectClient) -> None:
        """Raise ``PlatformUnavailable`` unless the Prefect API answers healthy."""
        try:
            error = await client.api_healthcheck()
        except PrefectHTTPStatusError as exc:
            raise errors.PlatformUnavailable(f"Prefect API unhealthy: {exc}") from exc
        if error is not None:
            raise errors.PlatformUnavailable(f"Prefect API unhealthy: {error}")

    # ---- helpers ---------------------------------------------------------------------------

    async def _flow_id(self, client: PrefectClient) -> uuid.UUID:
        return await client.create_flow_from_name(FLOW_NAME)

    async def _require_pool(self, client: PrefectClient, pool: str) -> None:
        try:
            await client.read_work_pool(pool)
        except ObjectNotFound:
            raise errors.InvalidTask("pool", f"no work pool named {pool!r}") from None

    def _job_variables(self, spec: models.TaskSpec, pool: str) -> dict[str, Any]:
        """The task's resource limits and labels, for pools that run jobs in containers."""
        if pool not in self.settings.container_pools:
            for field in ("memory", "cpus"):
                if getattr(spec, field) is not None:
                    raise errors.InvalidTask(
                        field, f"only container pools limit it; pool {pool!r} is not one"
                    )
            return {}
        return docker_pool.job_variables(spec.name, spec.memory, spec.cpus)

    def _pull_step(self, pool: str) -> dict[str, Any]:
        """Run flows from the project directory (inside the image for container pools)."""
        directory = (
            self.settings.container_project_dir
            if pool in self.settings.container_pools
            else str(self.settings.project_dir)
        )
        return {"prefect.deployments.steps.set_working_directory": {"directory": directory}}


# The server checks job variables against the pool's schema; name our field, not the variable.
_JOB_VARIABLE_FIELDS = {"memory_mb": "memory", "nano_cpus": "cpus"}


@contextmanager
def _pool_bounds() -> Iterator[None]:
    """Turn the server's refusal of a job variable (a limit out of the pool's bounds) into
    ``InvalidTask`` naming the task's field."""
    try:
        yield
    except PrefectHTTPStatusError as exc:
        detail = str(exc.response.json().get("detail", "")) if exc.response.content else ""
        found = re.search(r"Validation failed for field '(\w+)'\. Failure reason: (.*)", detail)
        if exc.response.status_code != 422 or found is None:
            raise
        field = _JOB_VARIABLE_FIELDS.get(found[1], found[1])
        raise errors.InvalidTask(field, f"outside the work pool's bounds: {found[2]}") from exc


def flow_parameters(spec: models.TaskSpec, version: int) -> dict[str, Any]:
    """The generic flow's parameters for a task version (the job contract, ``policy``)."""
    return JobParameters.of(spec, version).as_flow_parameters()


def deployment_tags(spec: models.TaskSpec) -> list[str]:
    """The task's tags plus one ``notify:NAME`` per notification block (runs inherit them)."""
    return [*spec.tags, *(automations.tag(name) for name in spec.notify)]


def summarise(state_type: objects.StateType | None) -> models.JobState:
    """Prefect's state type as one of our five job states."""
    return _STATE_SUMMARY.get(state_type or objects.StateType.SCHEDULED, models.JobState.PENDING)


def state_types(state: models.JobState) -> list[objects.StateType]:
    """The Prefect state types a job state stands for."""
    return _STATE_TYPES[state]


def to_job(
    run: objects.FlowRun,
    task: str | None,
    *,
    states: Sequence[objects.State] = (),
    attempts: int | None = None,
) -> models.Job:
    """A flow run as a job."""
    state = run.state
    scheduled = run.expected_start_time
    job = JobParameters.read(run.parameters)
    version = job.version if job is not None else None
    delay = (run.start_time - scheduled).total_seconds() if run.start_time and scheduled else None
    error = state.message if state and state.type in _FAILED_TYPES else None
    return models.Job(
        id=str(run.id),
        name=run.name,
        task=task,
        state=summarise(run.state_type),
        state_name=_state_name(run),
        detail=state.message if state else None,
        scheduled_time=scheduled,
        start_time=run.start_time,
        end_time=run.end_time,
        start_delay=delay,
        attempts=attempts if attempts is not None else run.run_count,
        code_version=version,
        parameters=dict(job.parameters) if job is not None else {},
        auto_scheduled=run.auto_scheduled,
        timeline=[
            models.StateChange(
                state=summarise(s.type),
                name=s.name or s.type.value,
                timestamp=s.timestamp,
                message=s.message,
            )
            for s in states
        ],
        error=error,
    )


_FAILED_TYPES = (objects.StateType.FAILED, objects.StateType.CRASHED)


def describe_schedules(deployment: DeploymentResponse) -> str | None:
    """A deployment's schedules as text, for deployments we did not create."""
    parts = []
    for item in deployment.schedules:
        s = item.schedule
        if isinstance(s, CronSchedule):
            parts.append(f"cron {s.cron} ({s.timezone or 'UTC'})")
        elif isinstance(s, IntervalSchedule):
            parts.append(f"every {s.interval}")
        elif isinstance(s, RRuleSchedule):
            parts.append(f"rrule {s.rrule} ({s.timezone or 'UTC'})")
    return "; ".join(parts) or None


def _state_name(run: objects.FlowRun) -> str:
    return run.state.name if run.state and run.state.name else str(run.state_type)


def _schedule_create(plan: schedules.Plan | None) -> list[DeploymentScheduleCreate]:
    if plan is None:
        return []
    schedule: CronSchedule | IntervalSchedule | RRuleSchedule
    if plan.cron is not None:
        schedule = CronSchedule(cron=plan.cron, timezone=plan.timezone)
    elif plan.interval is not None:
        schedule = IntervalSchedule(
            interval=dt.timedelta(seconds=plan.interval),
            anchor_date=schedules.INTERVAL_ANCHOR,
            timezone=plan.timezone,
        )
    else:
        assert plan.rrule is not None
        schedule = RRuleSchedule(rrule=plan.rrule, timezone=plan.timezone)
    return [DeploymentScheduleCreate(schedule=schedule, active=True, slug=plan.kind)]


def _concurrency_options(spec: models.TaskSpec) -> objects.ConcurrencyOptions | None:
    if spec.concurrency is None:
        return None
    strategy = (
        objects.ConcurrencyLimitStrategy.CANCEL_NEW
        if spec.concurrency_policy is models.ConcurrencyPolicy.CANCEL_NEW
        else objects.ConcurrencyLimitStrategy.ENQUEUE
    )
    return objects.ConcurrencyOptions(collision_strategy=strategy)


@functools.cache
def _flow_parameter_schema() -> dict[str, Any]:
    """The generic flow's parameter schema, so the Prefect UI's run form knows its fields."""
    from prefect.utilities.callables import parameter_schema

    from taskscheduler.runtime.flow import run_task

    return parameter_schema(run_task.fn).model_dump_for_openapi()


def _run_filter(
    deployment_ids: Sequence[uuid.UUID] | None,
    states: Sequence[objects.StateType] | None,
    flow_only: bool,
) -> filters.FlowRunFilter:
    """Flow runs of deployments (of these, if given), in these states, optionally not subflows."""
    return filters.FlowRunFilter(
        deployment_id=filters.FlowRunFilterDeploymentId(
            any_=list(deployment_ids) if deployment_ids else None, is_null_=False
        ),
        state=filters.FlowRunFilterState(type=filters.FlowRunFilterStateType(any_=list(states)))
        if states
        else None,
        parent_task_run_id=filters.FlowRunFilterParentTaskRunId(is_null_=True)
        if flow_only
        else None,
    )


def _run_sort(newest_first: bool) -> sorting.FlowRunSort:
    return (
        sorting.FlowRunSort.EXPECTED_START_TIME_DESC
        if newest_first
        else sorting.FlowRunSort.EXPECTED_START_TIME_ASC
    )
