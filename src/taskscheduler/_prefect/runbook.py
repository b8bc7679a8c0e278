"""The watchdog's connector to Prefect: jobs by state, as plain facts, and the few state
changes and events the watchdog makes. The rules live in ``services.watchdog``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas import filters, objects, sorting
from prefect.events import Event
from prefect.events.clients import get_events_client
from prefect.settings import PREFECT_API_AUTH_STRING
from prefect.states import AwaitingRetry, Crashed

from taskscheduler import policy
from taskscheduler._prefect import automations

PAGE = 200
# The Prefect server's query for running jobs gone silent (``_prefect.server.silence``).
SILENT_JOBS = "/taskscheduler/jobs/silent"
_EVENT_NAMESPACE = uuid.UUID("0f6c3f55-1c71-4c43-9d1f-6f7a43f3bd1e")


@dataclasses.dataclass(frozen=True)
class RunFacts:
    """What the watchdog needs to know of one job."""

    id: uuid.UUID
    name: str
    flow_id: uuid.UUID
    deployment_id: uuid.UUID | None
    state_type: str | None  # Prefect's state type, e.g. "PENDING"
    state_since: dt.datetime | None
    run_count: int
    start_time: dt.datetime | None
    tags: tuple[str, ...]
    job: policy.JobParameters | None

    @classmethod
    def of(cls, run: objects.FlowRun) -> RunFacts:
        """The facts of a flow run."""
        state = run.state
        return cls(
            id=run.id,
            name=run.name,
            flow_id=run.flow_id,
            deployment_id=run.deployment_id,
            state_type=state.type.value if state is not None else None,
            state_since=state.timestamp if state is not None else None,
            run_count=run.run_count,
            start_time=run.start_time,
            tags=tuple(run.tags),
            job=policy.JobParameters.read(run.parameters),
        )


class RunBook:
    """The watchdog's reads and writes, over one client per ``session()``."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        """An open connection to the Prefect API."""
        async with PrefectClient(
            self.api_url, auth_string=PREFECT_API_AUTH_STRING.value()
        ) as client:
            yield Session(client)


class Session:
    """One open client: reads jobs by state, sets their states, emits SLA events."""

    def __init__(self, client: PrefectClient) -> None:
        self.client = client

    async def ensure_platform_automations(self, notify: Any) -> None:
        """The global notification routes (``automations``)."""
        await automations.ensure_platform_automations(self.client, notify)

    async def pending_since_before(self, before: dt.datetime) -> list[RunFacts]:
        """Jobs in Pending expected to start before ``before`` (a retry keeps its first
        expected time, so this only narrows the read; the state's timestamp decides)."""
        return await self._jobs_in(
            objects.StateType.PENDING,
            expected_start_time=filters.FlowRunFilterExpectedStartTime(before_=before),
        )

    async def crashed_since(self, since: dt.datetime) -> list[RunFacts]:
        """Jobs that crashed after ``since``, newest first."""
        return await self._jobs_in(
            objects.StateType.CRASHED,
            sort=sorting.FlowRunSort.END_TIME_DESC,
            end_time=filters.FlowRunFilterEndTime(after_=since),
        )

    async def silent_since(self, since: dt.datetime) -> list[uuid.UUID]:
        """Up to a page of running jobs with no Running state nor heartbeat since ``since``."""
        # Our own route: not among the paths Prefect's client names.
        response = await self.client.request(
            "GET", cast(Any, SILENT_JOBS), params={"since": since.isoformat(), "limit": PAGE}
        )
        return [uuid.UUID(i) for i in response.json()["runs"]]

    async def running(self) -> list[RunFacts]:
        """Jobs running now."""
        return await self._jobs_in(objects.StateType.RUNNING)

    async def crashes(self, run_id: uuid.UUID) -> int:
        """How many times the job has crashed."""
        states = await self.client.read_flow_run_states(run_id)
        return sum(1 for s in states if s.type is objects.StateType.CRASHED)

    async def crash(self, run_id: uuid.UUID, message: str) -> bool:
        """Mark the job Crashed; whether Prefect accepted."""
        state: objects.State[Any] = Crashed(message=message)
        result = await self.client.set_flow_run_state(run_id, state)
        return result.status.value == "ACCEPT"

    async def retry(self, run_id: uuid.UUID, at: dt.datetime, message: str) -> bool:
        """Put the job back to AwaitingRetry at ``at``; whether Prefect accepted."""
        state: objects.State[Any] = AwaitingRetry(scheduled_time=at, message=message)
        result = await self.client.set_flow_run_state(run_id, state, force=True)
        return result.status.value == "ACCEPT"

    async def deployment_names(self, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
        """Deployment (task) names by id."""
        found = await self.client.read_deployments(
            deployment_filter=filters.DeploymentFilter(
                id=filters.DeploymentFilterId(any_=list(ids))
            )
        )
        return {d.id: d.name for d in found}

    async def emit_sla_events(self, late: list[tuple[RunFacts, str | None, str]]) -> None:
        """One SLA event per (job, task name, reason)."""
        async with get_events_client() as events:
            for run, deployment, reason in late:
                await events.emit(sla_event(run, deployment, reason))

    async def _jobs_in(
        self,
        state_type: objects.StateType,
        *,
        sort: sorting.FlowRunSort | None = None,
        **narrow: Any,
    ) -> list[RunFacts]:
        """Up to a page of jobs (runs of the generic flow) in ``state_type``."""
        runs = await self.client.read_flow_runs(
            flow_filter=filters.FlowFilter(name=filters.FlowFilterName(any_=[policy.FLOW_NAME])),
            flow_run_filter=filters.FlowRunFilter(
                state=filters.FlowRunFilterState(
                    type=filters.FlowRunFilterStateType(any_=[state_type])
                ),
                **narrow,
            ),
            sort=sort,
            limit=PAGE,
        )
        return [RunFacts.of(run) for run in runs]


def sla_event(run: RunFacts, deployment: str | None, reason: str) -> Event:
    """The SLA event of a job; its id depends only on the job, so it counts once."""
    limit = run.job.max_runtime if run.job is not None else None
    related: list[dict[str, str]] = [
        {
            "prefect.resource.id": f"prefect.flow.{run.flow_id}",
            "prefect.resource.role": "flow",
            "prefect.resource.name": policy.FLOW_NAME,
        },
        *(
            [
                {
                    "prefect.resource.id": f"prefect.deployment.{run.deployment_id}",
                    "prefect.resource.role": "deployment",
                    "prefect.resource.name": deployment or "",
                }
            ]
            if run.deployment_id
            else []
        ),
        *(
            {"prefect.resource.id": f"prefect.tag.{t}", "prefect.resource.role": "tag"}
            for t in run.tags
        ),
    ]
    return Event(
        id=uuid.uuid5(_EVENT_NAMESPACE, f"sla:{run.id}"),
        occurred=dt.datetime.now(dt.UTC),
        event=automations.SLA_EVENT,
        resource={
            "prefect.resource.id": f"prefect.flow-run.{run.id}",
            "prefect.resource.name": run.name,
        },
        related=related,
        payload={"summary": "running longer than its SLA", "reason": reason, "max_runtime": limit},
    )
