"""Our set-based endpoints, mounted into the Prefect API (``/api/taskscheduler``): the fast
lane's claim, start and finish, the creation of many one-off jobs and of many deployments, the
deletion of a deployment with its held runs, and the running jobs that went silent.

They sit behind the API's own authentication and CSRF checks, in the same process and database
as Prefect's routes, and use Prefect's database interface; the work is done in ``fastpath``,
``creation``, ``new_deployments``, ``deletion``, ``silence`` and ``readiness``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Query, status
from prefect.server.database import PrefectDBInterface, provide_database_interface
from prefect.server.schemas.actions import BlockDocumentCreate, DeploymentCreate
from pydantic import AwareDatetime, BaseModel, Field

from taskscheduler import models
from taskscheduler._prefect.server import (
    creation,
    deletion,
    fastpath,
    new_deployments,
    readiness,
    silence,
)

PREFIX = "/taskscheduler"
MAX_RUNS = 1000
MAX_DEPLOYMENTS = models.MAX_NEW_TASKS
# The next runs of each new deployment its creation answers: a task's detail shows five.
NEXT_RUNS = 5

router = APIRouter(prefix=PREFIX, tags=["taskscheduler"])


class Repeatable(BaseModel):
    """A call its sender may repeat after losing the answer: with the same ``transition_id``
    the repeat answers what the first call did (see ``fastpath``)."""

    transition_id: uuid.UUID = Field(default_factory=uuid.uuid4)


class ClaimBody(Repeatable):
    """Claim the pool's runs due before ``before``; ``repeat``: this is a repeat."""

    pool: str
    before: dt.datetime
    limit: int = Field(default=100, ge=1, le=MAX_RUNS)
    repeat: bool = False


class ClaimAnswer(BaseModel):
    """Runs claimed; due runs left to Prefect's normal path; orphans cancelled."""

    claimed: list[fastpath.Claimed]
    limited: list[uuid.UUID]
    cancelled_orphans: int
    transition_id: uuid.UUID


class Move(BaseModel):
    """A run and the state id it must still be in."""

    id: uuid.UUID
    state_id: uuid.UUID
    name: str | None = Field(default=None, max_length=50)


class StartBody(Repeatable):
    """Start these held runs."""

    runs: list[Move] = Field(max_length=MAX_RUNS)


class StartAnswer(BaseModel):
    """The runs that started, with their Running state ids."""

    started: dict[uuid.UUID, uuid.UUID]
    transition_id: uuid.UUID


class LogLine(BaseModel):
    """A log line of a run, as Prefect's ``POST /logs/`` takes it, and the id to store it by."""

    id: uuid.UUID | None = None
    name: str
    level: int
    message: str
    timestamp: dt.datetime
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None


class FinishBody(Repeatable):
    """Complete these running runs, after writing these log lines."""

    runs: list[Move] = Field(default_factory=list, max_length=MAX_RUNS)
    logs: list[LogLine] = Field(default_factory=list, max_length=20 * MAX_RUNS)


class FinishAnswer(BaseModel):
    """The runs that completed."""

    completed: list[uuid.UUID]
    transition_id: uuid.UUID


Database = Depends(provide_database_interface)


def _moves(moves: list[Move]) -> list[fastpath.Transition]:
    return [fastpath.Transition(m.id, m.state_id, m.name) for m in moves]


class NewJob(BaseModel):
    """One one-off job: when, the flow parameters over the deployment's, the repeat key."""

    scheduled_time: dt.datetime
    parameters: dict[str, Any] | None = None
    key: str = Field(min_length=1, max_length=200)


class CreateBody(BaseModel):
    """Create these Scheduled runs of one deployment."""

    deployment_id: uuid.UUID
    runs: list[NewJob] = Field(min_length=1, max_length=MAX_RUNS)


class CreateAnswer(BaseModel):
    """The runs' ids in the order asked, and how many this call created (the rest existed)."""

    ids: list[uuid.UUID]
    created: int


@router.post("/jobs/bulk", status_code=status.HTTP_201_CREATED)
async def create_jobs(body: CreateBody, db: PrefectDBInterface = Database) -> CreateAnswer:
    """Insert many Scheduled runs of a deployment in one transaction, as the scheduler does."""
    runs = [creation.NewRun(r.scheduled_time, r.parameters, r.key) for r in body.runs]
    try:
        async with db.session_context(begin_transaction=True) as session:
            ids, created = await creation.create_runs(db, session, body.deployment_id, runs)
    except creation.DeploymentNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Deployment not found") from None
    return CreateAnswer(ids=ids, created=created)


class NewDeployment(BaseModel):
    """A deployment as Prefect's ``POST /deployments/`` takes it, and from when to make its
    schedules' first runs (as ``POST /deployments/{id}/schedule`` would)."""

    deployment: DeploymentCreate
    schedule_from: dt.datetime | None = None


class DeploymentsBody(BaseModel):
    """Block documents, then deployments that may use them, all created or none."""

    documents: list[BlockDocumentCreate] = Field(default_factory=list, max_length=MAX_DEPLOYMENTS)
    deployments: list[NewDeployment] = Field(min_length=1, max_length=MAX_DEPLOYMENTS)


class DeploymentsAnswer(BaseModel):
    """The deployments' ids, in the order asked; when each one's first run is due, and its
    first ``NEXT_RUNS``."""

    ids: list[uuid.UUID]
    first_runs: dict[uuid.UUID, dt.datetime]
    next_runs: dict[uuid.UUID, list[dt.datetime]]


@router.post("/deployments/bulk", status_code=status.HTTP_201_CREATED)
async def create_deployments(
    body: DeploymentsBody, db: PrefectDBInterface = Database
) -> DeploymentsAnswer:
    """Create the documents and deployments, and their first runs, in one transaction; 409
    naming the names already taken (``taken``), 404 naming a missing work pool
    (``missing_pool``), flow (``missing_flow``) or document block type or schema
    (``missing_block``)."""
    wanted = [
        new_deployments.NewDeployment(d.deployment, d.schedule_from) for d in body.deployments
    ]
    try:
        async with db.session_context(begin_transaction=True) as session:
            ids = await new_deployments.create_deployments(db, session, body.documents, wanted)
            runs = await new_deployments.next_runs(db, session, ids, limit=NEXT_RUNS)
    except new_deployments.NamesTaken as taken:
        raise HTTPException(status.HTTP_409_CONFLICT, {"taken": taken.names}) from None
    except sa.exc.IntegrityError:  # a name taken by a call at the same time
        async with db.session_context() as session:
            names = await new_deployments.taken_names(db, session, [w.deployment for w in wanted])
        detail = {"taken": names} if names else "A code document's name is taken"
        raise HTTPException(status.HTTP_409_CONFLICT, detail) from None
    except new_deployments.PoolNotFound as missing:
        raise HTTPException(status.HTTP_404_NOT_FOUND, {"missing_pool": str(missing)}) from None
    except new_deployments.FlowNotFound as missing:
        raise HTTPException(status.HTTP_404_NOT_FOUND, {"missing_flow": str(missing)}) from None
    except LookupError as missing:  # a document's block type or schema
        raise HTTPException(status.HTTP_404_NOT_FOUND, {"missing_block": str(missing)}) from None
    first = {i: times[0] for i, times in runs.items()}
    return DeploymentsAnswer(ids=ids, first_runs=first, next_runs=runs)


@router.delete("/deployments/{deployment_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_deployment(deployment_id: uuid.UUID, db: PrefectDBInterface = Database) -> None:
    """Cancel the deployment's held runs and delete it, in one transaction."""
    async with db.session_context(begin_transaction=True) as session:
        found = await deletion.delete_deployment(db, session, deployment_id)
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Deployment not found")


class SilentAnswer(BaseModel):
    """Running jobs with neither their Running state nor a heartbeat since the time asked."""

    runs: list[uuid.UUID]


@router.get("/jobs/silent")
async def silent_jobs(
    since: AwareDatetime,
    limit: int = Query(default=200, ge=1, le=MAX_RUNS),
    db: PrefectDBInterface = Database,
) -> SilentAnswer:
    """The running jobs silent since ``since`` (the watchdog crashes them: ``silence``)."""
    async with db.session_context() as session:
        return SilentAnswer(runs=await silence.silent_since(session, since, limit))


@router.post("/fast/claim")
async def claim(
    body: ClaimBody, background: BackgroundTasks, db: PrefectDBInterface = Database
) -> ClaimAnswer:
    """Scheduled → Pending for up to ``limit`` due runs, in one transaction; then, after the
    answer and at most every ``readiness.REFRESH``, the pool is shown as polled."""
    transition = body.transition_id
    async with db.session_context(begin_transaction=True) as session:
        found = await fastpath.claim(
            db,
            session,
            pool=body.pool,
            before=body.before,
            limit=body.limit,
            transition_id=transition,
            repeat=body.repeat,
        )
    if readiness.due(body.pool):
        background.add_task(readiness.refresh, db, body.pool)
    return ClaimAnswer(
        claimed=found.claimed,
        limited=found.limited,
        cancelled_orphans=found.cancelled_orphans,
        transition_id=transition,
    )


@router.post("/fast/start")
async def start(body: StartBody, db: PrefectDBInterface = Database) -> StartAnswer:
    """Pending → Running for the runs still in their claimed state, in one transaction."""
    transition = body.transition_id
    async with db.session_context(begin_transaction=True) as session:
        started = await fastpath.start(db, session, _moves(body.runs), transition_id=transition)
    return StartAnswer(started=started, transition_id=transition)


@router.post("/fast/finish")
async def finish(body: FinishBody, db: PrefectDBInterface = Database) -> FinishAnswer:
    """The log lines, then Running → Completed for the runs still running, in one transaction."""
    transition = body.transition_id
    async with db.session_context(begin_transaction=True) as session:
        completed = await fastpath.finish(
            db,
            session,
            _moves(body.runs),
            transition_id=transition,
            logs=[line.model_dump() for line in body.logs],
        )
    return FinishAnswer(completed=completed, transition_id=transition)
