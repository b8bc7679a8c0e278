"""Jobs ↔ flow runs: creating, reading, counting, moving and cancelling a task's jobs."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any, cast

from prefect.client.schemas import filters, objects, sorting
from prefect.client.schemas.responses import OrchestrationResult
from prefect.states import Cancelled, Cancelling

from taskscheduler import errors, models
from taskscheduler._prefect import mapping, run_queries
from taskscheduler._prefect.records import Deployment, Run
from taskscheduler._prefect.session import PAGE, GatewayBase, Session

# A task's "last job": the newest one that started, whatever became of it.
LAST_JOB_STATES = mapping.state_types(
    [
        models.JobState.RUNNING,
        models.JobState.COMPLETED,
        models.JobState.FAILED,
        models.JobState.CANCELLED,
    ]
)
_WAITING = mapping.state_types([models.JobState.PENDING])
# A held run may move too: the fast lane starts one only from the very state its claim wrote,
# and Prefect refuses Running to a cancelled run, so a process a worker started for it ends
# without running its code.
_MOVABLE = (objects.StateType.SCHEDULED, objects.StateType.PENDING)
# The Prefect server's set-based creation of one-off runs (``_prefect.server.creation``).
BULK_JOBS = "/taskscheduler/jobs/bulk"


class FlowRuns(GatewayBase):
    """The gateway's job operations (a part of ``gateway.Gateway``)."""

    async def create_run(
        self,
        session: Session,
        deployment: Deployment,
        *,
        at: dt.datetime,
        parameters: dict[str, Any] | None,
    ) -> models.Job:
        """One job of a task, due at ``at``."""
        run = await run_queries.create_flow_run(
            session.client, deployment.id, at=at, parameters=parameters
        )
        return mapping.to_job(run, deployment.name)

    async def create_runs(
        self,
        session: Session,
        deployment: Deployment,
        jobs: Sequence[tuple[dt.datetime, dict[str, Any] | None]],
        key: str,
    ) -> tuple[list[str], int]:
        """Jobs of a task due at their times, with their flow parameters over the task's,
        in one transaction of the Prefect server; their ids in order, and how many were new
        (a repeat with the same ``key`` creates none)."""
        body = {
            "deployment_id": str(deployment.id),
            "runs": [
                {"scheduled_time": at.isoformat(), "parameters": parameters, "key": f"{key}.{n}"}
                for n, (at, parameters) in enumerate(jobs)
            ],
        }
        # Our own route: not among the paths Prefect's client names.
        response = await session.client.request("POST", cast(Any, BULK_JOBS), json=body)
        answer = response.json()
        return [str(i) for i in answer["ids"]], int(answer["created"])

    async def read_run(self, session: Session, job_id: str) -> Run:
        """The flow run of a job id."""
        return mapping.to_run(await run_queries.read_flow_run(session.client, job_id))

    async def read_job(self, session: Session, job_id: str) -> models.Job:
        """A job with its task's name, its state timeline and its attempts."""
        client = session.client
        run = await run_queries.read_flow_run(client, job_id)
        names = await run_queries.deployment_names(
            client, {run.deployment_id} if run.deployment_id else set()
        )
        states = await client.read_flow_run_states(run.id)
        return mapping.to_job(
            run,
            names.get(run.deployment_id) if run.deployment_id else None,
            states=sorted(states, key=lambda s: s.timestamp),
            attempts=await run_queries.attempts(client, run),
        )

    async def read_jobs(
        self,
        session: Session,
        *,
        deployment_id: uuid.UUID | None = None,
        states: Sequence[models.JobState] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[models.Job]:
        """Jobs (of one deployment, in some states), newest scheduled time first."""
        runs = await run_queries.read_flow_runs(
            session.client,
            deployment_id=deployment_id,
            states=mapping.state_types(states) if states else None,
            limit=limit,
            offset=offset,
        )
        names = await run_queries.deployment_names(
            session.client, {r.deployment_id for r in runs if r.deployment_id}
        )
        return [
            mapping.to_job(r, names.get(r.deployment_id) if r.deployment_id else None) for r in runs
        ]

    async def upcoming(
        self, session: Session, deployment_id: uuid.UUID, *, limit: int = 5
    ) -> list[dt.datetime]:
        """When a task's next waiting jobs are due, soonest first."""
        runs = await run_queries.read_flow_runs(
            session.client,
            deployment_id=deployment_id,
            states=_WAITING,
            newest_first=False,
            limit=limit,
        )
        return [r.expected_start_time for r in runs if r.expected_start_time]

    async def last_job(self, session: Session, deployment: Deployment) -> models.Job | None:
        """A task's newest job that started."""
        last = await run_queries.read_flow_runs(
            session.client, deployment_id=deployment.id, states=LAST_JOB_STATES, limit=1
        )
        return mapping.to_job(last[0], deployment.name) if last else None

    async def next_run_times(
        self, session: Session, deployments: Sequence[Deployment]
    ) -> dict[uuid.UUID, dt.datetime]:
        """When each deployment's next waiting job is due (those that have one)."""
        runs = await run_queries.first_runs(
            session.client, [d.id for d in deployments], _WAITING, newest_first=False
        )
        return {i: r.expected_start_time for i, r in runs.items() if r.expected_start_time}

    async def last_jobs(
        self, session: Session, deployments: Sequence[Deployment]
    ) -> dict[uuid.UUID, models.Job]:
        """Each deployment's newest job that started (those that have one)."""
        runs = await run_queries.first_runs(
            session.client, [d.id for d in deployments], LAST_JOB_STATES, newest_first=True
        )
        return {d.id: mapping.to_job(runs[d.id], d.name) for d in deployments if d.id in runs}

    async def count_jobs(self, session: Session, state: models.JobState) -> int:
        """How many jobs (flow runs of deployments) are in ``state``."""
        return await session.client.count_flow_runs(
            flow_run_filter=filters.FlowRunFilter(
                deployment_id=filters.FlowRunFilterDeploymentId(is_null_=False),
                state=filters.FlowRunFilterState(
                    type=filters.FlowRunFilterStateType(any_=mapping.state_types([state]))
                ),
            )
        )

    async def refresh_manual_runs(
        self,
        session: Session,
        deployment_id: uuid.UUID,
        old: tuple[models.TaskSpec, int],
        new: tuple[models.TaskSpec, int],
    ) -> int:
        """Give waiting, manually scheduled jobs the new definition (``new``: spec, version);
        a job keeps its own arguments when they differ from the ``old`` definition's."""
        before = mapping.flow_parameters(*old)
        after = mapping.flow_parameters(*new)
        runs = await run_queries.read_flow_runs(
            session.client,
            deployment_id=deployment_id,
            states=[objects.StateType.SCHEDULED],
            auto_scheduled=False,
            limit=None,
        )
        for run in runs:
            parameters = dict(after)
            if run.parameters.get("parameters") != before.get("parameters"):
                parameters["parameters"] = run.parameters.get("parameters")
            await session.client.update_flow_run(run.id, parameters=parameters)
        return len(runs)

    async def move(self, session: Session, run: Run, at: dt.datetime) -> str:
        """Replace a waiting job (Scheduled, or Pending: held by a worker for its instant) by
        a new one at ``at``; refuse once it has started. Returns the new job's id.

        Prefect keeps a flow run's expected start time from its creation, so moving a run
        in place would leave every delay figure measured from the old time. Instead the new
        run takes the old one's arguments and the old one is cancelled with a note naming its
        successor; cancelling (not deleting) keeps the scheduler from re-creating its slot.
        """
        client = session.client
        if mapping.state_type_of(run) not in _MOVABLE or run.deployment_id is None:
            raise errors.JobAlreadyStarted(str(run.id), run.state_name)
        new = await run_queries.create_flow_run(
            client, run.deployment_id, at=at, parameters=dict(run.parameters)
        )
        result: OrchestrationResult[Any] = await client.set_flow_run_state(
            run.id, Cancelled(message=f"Rescheduled to {at.isoformat()} as job {new.id}")
        )
        current = await client.read_flow_run(run.id)
        if result.status.value != "ACCEPT" or current.state_type is not objects.StateType.CANCELLED:
            await client.delete_flow_run(new.id)
            raise errors.JobAlreadyStarted(str(run.id), mapping.state_name(current))
        return str(new.id)

    async def cancel(self, session: Session, run: Run) -> None:
        """Cancel a job: a waiting one at once, a running one through its worker (Cancelling)."""
        state_type = mapping.state_type_of(run)
        if mapping.summarise(state_type).is_final:
            raise errors.JobAlreadyFinished(str(run.id), run.state_name)
        running = state_type in (objects.StateType.RUNNING, objects.StateType.CANCELLING)
        state: objects.State[Any] = (
            Cancelling(message="Cancelled by user")
            if running
            else Cancelled(message="Cancelled by user")
        )
        result = await session.client.set_flow_run_state(run.id, state, force=True)
        if result.status.value != "ACCEPT":
            raise errors.JobAlreadyFinished(str(run.id), run.state_name)

    async def read_logs(
        self, session: Session, run_id: uuid.UUID, *, limit: int | None = None
    ) -> list[models.LogLine]:
        """A job's log lines (flow run and its task runs), oldest first."""
        log_filter = filters.LogFilter(flow_run_id=filters.LogFilterFlowRunId(any_=[run_id]))
        logs: list[objects.Log] = []
        while True:
            page = await session.client.read_logs(
                log_filter=log_filter,
                limit=PAGE,
                offset=len(logs),
                sort=sorting.LogSort.TIMESTAMP_ASC,
            )
            logs.extend(page)
            if len(page) < PAGE or (limit and len(logs) >= limit):
                return [mapping.to_log_line(log) for log in (logs[:limit] if limit else logs)]
