"""Creating many one-off runs of a deployment in one transaction, the way Prefect's scheduler does.

Prefect's ``POST /deployments/{id}/create_flow_run`` (and its bulk form, 100 a call) hydrates
and orchestrates each run's first state in its own transaction. A task's one-off jobs need none
of that: their parameters are the deployment's (already plain JSON) with the job's arguments
over them, and their first state is ``Scheduled``. Prefect's scheduler service creates the runs
of a deployment's schedules with a bulk insert (``models.deployments.
_insert_scheduled_flow_runs``: the runs, their states, the ``state_id``s, three statements for
the whole set); this builds the same rows for one-off jobs and hands them to it.

The rows are those the scheduler writes for its own runs (``_generate_scheduled_flow_runs``),
except that they are not ``auto_scheduled``, their state's message says who made them, they
carry ``state_timestamp`` as ``create_flow_run``'s do (the scheduler's leave it empty), and
their idempotency key is the caller's: a call repeated after its answer was lost creates
nothing twice and answers the same ids (``tests/integration/test_fastpath_contract.py``
compares the rows with those of Prefect's own ``create_flow_run``). Like the scheduler's runs,
they emit no state event on creation.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from prefect.server.database import PrefectDBInterface
from prefect.server.models.deployments import (
    _insert_scheduled_flow_runs,
    with_system_labels_for_deployment_flow_run,
)
from prefect.server.schemas import states
from sqlalchemy.ext.asyncio import AsyncSession

# What the Scheduled state of a job created here says (Prefect's scheduler: "Flow run scheduled").
MESSAGE = "Scheduled in bulk"
_KEY_PREFIX = "taskscheduler-bulk"


class DeploymentNotFound(LookupError):
    """No deployment has that id."""


@dataclasses.dataclass(frozen=True)
class NewRun:
    """One run to create: when it is due, the parameters over the deployment's, and the key
    that makes a repeat of the call create nothing twice."""

    scheduled_time: dt.datetime
    parameters: dict[str, Any] | None
    key: str


async def create_runs(
    db: PrefectDBInterface,
    session: AsyncSession,
    deployment_id: uuid.UUID,
    runs: Sequence[NewRun],
) -> tuple[list[uuid.UUID], int]:
    """Insert ``runs`` as Scheduled runs of the deployment; their ids, in order (those made by
    an earlier call with the same keys included), and how many this call created."""
    deployment = await session.get(db.Deployment, deployment_id)
    if deployment is None:
        raise DeploymentNotFound(str(deployment_id))
    labels = await with_system_labels_for_deployment_flow_run(
        session=session, deployment=deployment
    )
    base_parameters: dict[str, Any] = dict(deployment.parameters or {})
    keys = [_key(deployment_id, run.key) for run in runs]
    first_states = [_scheduled(run.scheduled_time) for run in runs]
    rows = [
        {
            "id": uuid.uuid4(),
            "flow_id": deployment.flow_id,
            "deployment_id": deployment_id,
            "deployment_version": deployment.version,
            "work_queue_name": deployment.work_queue_name,
            "work_queue_id": deployment.work_queue_id,
            "parameters": {**base_parameters, **(run.parameters or {})},
            "infrastructure_document_id": deployment.infrastructure_document_id,
            "idempotency_key": key,
            "tags": list(deployment.tags or []),
            "labels": labels,
            "auto_scheduled": False,
            "state": state,
            "state_timestamp": state["timestamp"],
            "state_type": states.StateType.SCHEDULED,
            "state_name": "Scheduled",
            "next_scheduled_start_time": run.scheduled_time,
            "expected_start_time": run.scheduled_time,
        }
        for run, key, state in zip(runs, keys, first_states, strict=True)
    ]
    # Prefect's db_injector hides the coroutine from mypy: the ids of the rows it inserted.
    inserted = await _insert_scheduled_flow_runs(session=session, runs=rows)  # type: ignore[attr-defined]
    found = await session.execute(
        sa.select(db.FlowRun.idempotency_key, db.FlowRun.id).where(
            db.FlowRun.flow_id == deployment.flow_id, db.FlowRun.idempotency_key.in_(keys)
        )
    )
    by_key = {key: run_id for key, run_id in found.all()}
    return [by_key[key] for key in keys], len(inserted)


def _key(deployment_id: uuid.UUID, key: str) -> str:
    return f"{_KEY_PREFIX} {deployment_id} {key}"


def _scheduled(when: dt.datetime) -> dict[str, Any]:
    """The first state's row values, as the scheduler builds them (``states.Scheduled``)."""
    details: dict[str, Any] = {"scheduled_time": when}
    return states.State(
        type=states.StateType.SCHEDULED,
        name="Scheduled",
        message=MESSAGE,
        state_details=states.StateDetails(**details),
    ).model_dump()
