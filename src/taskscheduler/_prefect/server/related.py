"""The related resources of many runs' state events, read in one query.

Prefect's ``flow_run_state_change_event`` names each run's flow, deployment, work queue and
work pool in its event. It reads them per run, with four ORM reads whose eager loads follow the
deployment's schedules and limit and the queue's pool, and keeps the result in a cache of its
own for the next event of the run. Publishing the events of a fast-lane set that way was about
a sixth of the API processes' CPU (py-spy, 4,000 jobs a minute). ``remember`` reads the same
names for a whole set with one joined query and puts them in Prefect's cache, in the form its
own ``_as_resource_data`` gives them, so Prefect's function then builds the events as it always
does. A run the cache cannot take (a subflow's, with a parent task run) is left to Prefect's
reads. ``test_fastpath_contract`` compares the events with Prefect's path's, related resources
included.
"""

from __future__ import annotations

import types
import uuid
from collections.abc import Iterable
from typing import Any, cast

import sqlalchemy as sa
from prefect.server.database import PrefectDBInterface
from prefect.server.models import events as state_events
from sqlalchemy.ext.asyncio import AsyncSession


def _table(model: Any) -> sa.Table:
    return cast(sa.Table, model.__table__)


async def remember(db: PrefectDBInterface, session: AsyncSession, runs: Iterable[Any]) -> None:
    """Put the related resources of those ``runs`` (ORM flow runs) that Prefect has not cached
    into its cache."""
    cache = state_events._flow_run_resource_data_cache
    missing = {r.id: r for r in runs if r.id not in cache and r.parent_task_run_id is None}
    if not missing:
        return
    fr, flow, deployment = _table(db.FlowRun), _table(db.Flow), _table(db.Deployment)
    queue, pool = _table(db.WorkQueue), _table(db.WorkPool)
    found = await session.execute(
        sa.select(
            fr.c.id,
            flow.c.id.label("flow_id"),
            flow.c.name.label("flow_name"),
            flow.c.tags.label("flow_tags"),
            deployment.c.id.label("deployment_id"),
            deployment.c.name.label("deployment_name"),
            deployment.c.tags.label("deployment_tags"),
            queue.c.id.label("queue_id"),
            queue.c.name.label("queue_name"),
            pool.c.id.label("pool_id"),
            pool.c.name.label("pool_name"),
            pool.c.type.label("pool_type"),
        )
        .select_from(
            fr.outerjoin(flow, flow.c.id == fr.c.flow_id)
            .outerjoin(deployment, deployment.c.id == fr.c.deployment_id)
            .outerjoin(queue, queue.c.id == fr.c.work_queue_id)
            .outerjoin(pool, pool.c.id == queue.c.work_pool_id)
        )
        .where(fr.c.id.in_(list(missing)))
    )
    for row in found:
        cache[row.id] = state_events._as_resource_data(
            missing[row.id],
            _named(row.flow_id, row.flow_name, tags=row.flow_tags),
            _named(row.deployment_id, row.deployment_name, tags=row.deployment_tags),
            _named(row.queue_id, row.queue_name),
            _named(row.pool_id, row.pool_name, type=row.pool_type),
            None,
        )


def _named(id: uuid.UUID | None, name: str | None, **more: Any) -> Any:
    """What ``_as_resource_data`` reads of a flow, deployment, queue or pool; None if absent
    (an outer join's empty side), as Prefect's reads answer for a missing one."""
    return None if id is None else types.SimpleNamespace(id=id, name=name, **more)
