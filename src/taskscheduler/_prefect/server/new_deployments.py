"""Creating many deployments, with their code documents and first runs, in one transaction.

Creating one task costs the platform about ten calls to Prefect's API: the name check, the
pool, the code document, the deployment, the schedule's first runs and the read-back, each a
request, a transaction and its own session. Creating hundreds at once needs none of that
repetition: this takes the documents and deployments exactly as Prefect's routes take them
(``BlockDocumentCreate``, ``DeploymentCreate``) and hands each to the same model functions
those routes call (``models.block_documents.create_block_document``,
``models.deployments.create_deployment``, which also emits the deployment-created event, and
``models.deployments.schedule_runs`` of ``POST /deployments/{id}/schedule``), with the work
pools looked up once per pool rather than once per deployment.

What it adds to Prefect's routes: all or nothing. Either every document and deployment of the
call exists afterwards or none does, and a name that is taken refuses the whole call before
anything is written (Prefect's ``POST /deployments/`` would instead update the deployment
that has the name).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import sqlalchemy as sa
from prefect.server import models, schemas
from prefect.server.api.validation import validate_job_variables_for_deployment
from prefect.server.database import PrefectDBInterface
from sqlalchemy.ext.asyncio import AsyncSession

# Prefect's db_injector hides the coroutines of its model functions from mypy; typed here once.
_Model = Callable[..., Awaitable[Any]]
_create_document = cast(_Model, models.block_documents.create_block_document)
_create_deployment = cast(_Model, models.deployments.create_deployment)
_schedule_runs = cast(_Model, models.deployments.schedule_runs)
_read_work_pool = cast(_Model, models.workers.read_work_pool_by_name)


class NamesTaken(Exception):
    """Deployments of the same flow already have some of these names."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(", ".join(names))
        self.names = list(names)


class PoolNotFound(LookupError):
    """A deployment names a work pool that does not exist."""


@dataclasses.dataclass(frozen=True)
class NewDeployment:
    """A deployment to create, and from when its schedules' first runs are made (None: left to
    Prefect's scheduler service)."""

    deployment: schemas.actions.DeploymentCreate
    schedule_from: dt.datetime | None


async def create_deployments(
    db: PrefectDBInterface,
    session: AsyncSession,
    documents: Sequence[schemas.actions.BlockDocumentCreate],
    deployments: Sequence[NewDeployment],
) -> list[uuid.UUID]:
    """Create the documents, then the deployments and their first runs; the deployments' ids
    in the order given. The caller's transaction makes it all or nothing."""
    await _refuse_taken(db, session, [d.deployment for d in deployments])
    for document in documents:
        await _create_document(session=session, block_document=document)
    pools: dict[str, schemas.core.WorkPool] = {}
    ids: list[uuid.UUID] = []
    for new in deployments:
        action = new.deployment
        fields = action.model_dump(exclude={"work_pool_name"}, exclude_unset=True)
        if action.work_pool_name:
            pool = pools.get(action.work_pool_name)
            if pool is None:
                pool = await _work_pool(session, action.work_pool_name)
                pools[action.work_pool_name] = pool
            await validate_job_variables_for_deployment(session, pool, action)
            fields["work_queue_id"] = pool.default_queue_id
        row = schemas.core.Deployment(**fields)
        model = await _create_deployment(session=session, deployment=row)
        assert model is not None, "Prefect's create_deployment returns the row it upserted"
        ids.append(model.id)
    for deployment_id, new in zip(ids, deployments, strict=True):
        if new.schedule_from is not None and new.deployment.schedules:
            await _schedule_runs(
                session=session, deployment_id=deployment_id, start_time=new.schedule_from
            )
    return ids


async def first_runs(
    db: PrefectDBInterface, session: AsyncSession, deployment_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dt.datetime]:
    """When each deployment's first Scheduled run is due (those that have one), in one query:
    what the caller would otherwise read back deployment by deployment."""
    found = await session.execute(
        sa.select(db.FlowRun.deployment_id, sa.func.min(db.FlowRun.expected_start_time))
        .where(
            db.FlowRun.deployment_id.in_(deployment_ids),
            db.FlowRun.state_type == "SCHEDULED",
        )
        .group_by(db.FlowRun.deployment_id)
    )
    return {i: when for i, when in found.all() if i is not None and when is not None}


async def _refuse_taken(
    db: PrefectDBInterface,
    session: AsyncSession,
    deployments: Sequence[schemas.actions.DeploymentCreate],
) -> None:
    wanted = collections.Counter((d.flow_id, d.name) for d in deployments)
    twice = sorted(name for (_, name), count in wanted.items() if count > 1)
    if twice:
        raise NamesTaken(twice)
    found = await session.execute(
        sa.select(db.Deployment.name).where(
            sa.tuple_(db.Deployment.flow_id, db.Deployment.name).in_(list(wanted))
        )
    )
    taken = sorted(found.scalars())
    if taken:
        raise NamesTaken(taken)


async def _work_pool(session: AsyncSession, name: str) -> schemas.core.WorkPool:
    found = await _read_work_pool(session=session, work_pool_name=name)
    if found is None:
        raise PoolNotFound(name)
    return schemas.core.WorkPool.model_validate(found, from_attributes=True)
