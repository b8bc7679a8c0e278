"""Creating many deployments, with their code documents and first runs, in one transaction.

Creating one task costs the platform about ten calls to Prefect's API: the name check, the
pool, the code document, the deployment, the schedule's first runs and the read-back, each a
request, a transaction and its own session. Creating hundreds at once needs none of that
repetition. This takes the documents and deployments exactly as Prefect's routes take them
(``BlockDocumentCreate``, ``DeploymentCreate``), prepares each row as Prefect's model functions
do (``models.block_documents.create_block_document``, ``models.deployments.create_deployment``:
the same values, labels, encryption, job-variable check and concurrency limit), and writes them
set-wise: the encryption key, block types and schemas and work pools read once, all rows in one
flush, the created events sent through one publisher. What Prefect does per object and this
does per call is what made a task cost about 100 ms of the server's CPU (``read-back by id``
with its joins, an upsert and three reads per deployment). The first runs are made by
``models.deployments.schedule_runs``, as ``POST /deployments/{id}/schedule`` makes them. The
rows and events are held equal to Prefect's by a contract test
(``test_deployments_created_in_bulk_have_the_rows_prefects_routes_write``).

What it adds to Prefect's routes: all or nothing. Either every document and deployment of the
call exists afterwards or none does, and a name that is taken refuses the whole call before
anything is written (Prefect's ``POST /deployments/`` would instead update the deployment
that has the name).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, cast

import sqlalchemy as sa
from prefect.server import models, schemas
from prefect.server.api.validation import validate_job_variables_for_deployment
from prefect.server.database import PrefectDBInterface
from prefect.server.events.clients import PrefectServerEventsClient
from prefect.server.events.schemas.events import Event
from prefect.server.events.schemas.lifecycle import block_document_created_event
from prefect.server.models.block_documents import _separate_block_references_from_data
from prefect.server.models.events import deployment_created_event
from prefect.server.utilities.encryption import _get_fernet_encryption
from prefect.types._datetime import now
from sqlalchemy.ext.asyncio import AsyncSession

# Prefect's db_injector hides the coroutines of its model functions from mypy; typed here once.
_Model = Callable[..., Awaitable[Any]]
_create_document = cast(_Model, models.block_documents.create_block_document)
_schedule_runs = cast(_Model, models.deployments.schedule_runs)
_read_work_pool = cast(_Model, models.workers.read_work_pool_by_name)
_read_block_type = cast(_Model, models.block_types.read_block_type)
_read_block_schema = cast(_Model, models.block_schemas.read_block_schema)
_system_labels = cast(_Model, models.deployments.with_system_labels_for_deployment)


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
    events = await _add_documents(db, session, documents)
    rows = await _add_deployments(db, session, [d.deployment for d in deployments])
    await session.flush()
    at = now("UTC")  # Prefect's own calls pass the same
    events += [
        await deployment_created_event(session, row, at)  # type: ignore[arg-type]
        for row in rows
    ]
    for row, new in zip(rows, deployments, strict=True):
        if new.schedule_from is not None and new.deployment.schedules:
            await _schedule_runs(
                session=session, deployment_id=row.id, start_time=new.schedule_from
            )
    async with PrefectServerEventsClient() as client:
        for event in events:
            await client.emit(event)
    return [row.id for row in rows]


async def _add_documents(
    db: PrefectDBInterface,
    session: AsyncSession,
    documents: Sequence[schemas.actions.BlockDocumentCreate],
) -> list[Event]:
    """Add the documents' rows as ``create_block_document`` makes them; their created events.

    A document that references others is left to Prefect's function, which writes the
    references too (the platform's code documents have none)."""
    if not documents:
        return []
    fernet = await _get_fernet_encryption(session)
    types = await _read_each(_read_block_type, session, "block_type_id",
                             {d.block_type_id for d in documents})  # fmt: skip
    block_schemas = await _read_each(_read_block_schema, session, "block_schema_id",
                                     {d.block_schema_id for d in documents})  # fmt: skip
    added: list[tuple[Any, schemas.actions.BlockDocumentCreate, dict[str, Any]]] = []
    for document in documents:
        data, references = _separate_block_references_from_data(document.data)
        if references or document.is_anonymous:
            await _create_document(session=session, block_document=document)
            continue
        row = db.BlockDocument(
            id=uuid.uuid4(),
            name=document.name,
            block_schema_id=document.block_schema_id,
            block_type_id=document.block_type_id,
            block_type_name=types[document.block_type_id].name,
            is_anonymous=False,
            data=fernet.encrypt(json.dumps(data).encode()).decode(),
        )
        session.add(row)
        added.append((row, document, data))
    await session.flush()
    at = now("UTC")
    return [
        block_document_created_event(
            schemas.core.BlockDocument(
                id=row.id,
                created=row.created,
                updated=row.updated,
                name=document.name,
                data=data,
                block_schema_id=document.block_schema_id,
                block_schema=block_schemas[document.block_schema_id],
                block_type_id=document.block_type_id,
                block_type_name=row.block_type_name,
                is_anonymous=False,
            ),
            at,  # type: ignore[arg-type]  # Prefect's own calls pass the same
        )
        for row, document, data in added
    ]


async def _add_deployments(
    db: PrefectDBInterface,
    session: AsyncSession,
    deployments: Sequence[schemas.actions.DeploymentCreate],
) -> list[Any]:
    """Add the deployments' rows, schedules and concurrency limits as ``create_deployment``
    makes them for a name not yet taken; the ORM rows, in order."""
    pools = {name: await _work_pool(session, name)
             for name in {d.work_pool_name for d in deployments if d.work_pool_name}}  # fmt: skip
    rows = []
    for action in deployments:
        fields = action.model_dump(exclude={"work_pool_name"}, exclude_unset=True)
        if action.work_pool_name:
            pool = pools[action.work_pool_name]
            await validate_job_variables_for_deployment(session, pool, action)
            fields["work_queue_id"] = pool.default_queue_id
        deployment = schemas.core.Deployment(**fields)
        deployment.updated = now("UTC")  # type: ignore[assignment]  # as create_deployment does
        deployment.labels = await _system_labels(session, deployment)
        values = deployment.model_dump_for_orm(
            exclude_unset=True, exclude={"schedules", "version_info"}
        )
        limit = values.pop("concurrency_limit", None)
        job_variables = values.pop("job_variables", None)
        if job_variables is not None:
            values["infra_overrides"] = job_variables
        row = db.Deployment(id=uuid.uuid4(), **values)
        if limit is not None:
            row._concurrency_limit = limit
            row.global_concurrency_limit = db.ConcurrencyLimitV2(
                name=f"deployment:{row.id}", limit=limit
            )
        session.add(row)
        session.add_all(
            db.DeploymentSchedule(deployment_id=row.id, **schedule.model_dump(exclude={"replaces"}))
            for schedule in _schedule_actions(deployment.schedules)
        )
        rows.append(row)
    return rows


def _schedule_actions(
    schedules: Iterable[Any],
) -> list[schemas.actions.DeploymentScheduleCreate]:
    """The schedules as ``create_deployment`` hands them to ``create_deployment_schedules``."""
    return [
        schemas.actions.DeploymentScheduleCreate(
            schedule=s.schedule, active=s.active, parameters=s.parameters, slug=s.slug
        )
        for s in schedules
    ]


async def _read_each(
    read: _Model, session: AsyncSession, key: str, ids: set[uuid.UUID]
) -> dict[uuid.UUID, Any]:
    found = {i: await read(session=session, **{key: i}) for i in ids}
    missing = sorted(str(i) for i, row in found.items() if row is None)
    if missing:
        raise LookupError(f"{key} not found: {', '.join(missing)}")
    return found


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
    taken = await taken_names(db, session, deployments)
    if taken:
        raise NamesTaken(taken)


async def taken_names(
    db: PrefectDBInterface,
    session: AsyncSession,
    deployments: Sequence[schemas.actions.DeploymentCreate],
) -> list[str]:
    """The names of these deployments that their flows already have."""
    found = await session.execute(
        sa.select(db.Deployment.name).where(
            sa.tuple_(db.Deployment.flow_id, db.Deployment.name).in_(
                {(d.flow_id, d.name) for d in deployments}
            )
        )
    )
    return sorted(found.scalars())


async def _work_pool(session: AsyncSession, name: str) -> schemas.core.WorkPool:
    found = await _read_work_pool(session=session, work_pool_name=name)
    if found is None:
        raise PoolNotFound(name)
    return schemas.core.WorkPool.model_validate(found, from_attributes=True)
