"""The fast path's claim: due runs of a pool to Pending, a set at a time (see ``fastpath``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from prefect.server.database import PrefectDBInterface
from prefect.server.schemas import states
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from taskscheduler._prefect.server import deletion, rows
from taskscheduler._prefect.server.rows import runs_table, states_table

# Runs of deployments that are gone: cancelled by a claim that meets them, a bounded number
# per call, so a deleted task's runs never clog the lane.
ORPHANS_PER_CLAIM = 200

_CLAIMABLE = sa.text(
    """
    WITH pool AS (
        SELECT wp.id, wp.concurrency_limit FROM work_pool wp
        WHERE wp.name = :pool AND wp.is_paused IS FALSE
    ),
    pool_slots AS (
        SELECT GREATEST(0, pool.concurrency_limit - count(fr.id)) AS available
        FROM pool
        JOIN work_queue wq ON wq.work_pool_id = pool.id
        LEFT JOIN flow_run fr ON fr.work_queue_id = wq.id
            AND fr.state_type IN ('RUNNING', 'PENDING')
        WHERE pool.concurrency_limit IS NOT NULL
        GROUP BY pool.concurrency_limit
    )
    SELECT picked.id
    FROM pool
    CROSS JOIN LATERAL (
        -- NULL (no limit) when the queue has none: GREATEST would turn NULL into 0
        SELECT wq.id, wq.priority, CASE WHEN wq.concurrency_limit IS NULL THEN NULL
            ELSE GREATEST(0, wq.concurrency_limit - (
                SELECT count(*) FROM flow_run busy
                WHERE busy.work_queue_id = wq.id AND busy.state_type IN ('RUNNING', 'PENDING')
            )) END AS available
        FROM work_queue wq
        WHERE wq.work_pool_id = pool.id AND wq.is_paused IS FALSE
    ) queue
    CROSS JOIN LATERAL (
        SELECT fr.id, fr.next_scheduled_start_time
        FROM flow_run fr
        JOIN deployment d ON d.id = fr.deployment_id
        WHERE fr.work_queue_id = queue.id
          AND fr.state_type = 'SCHEDULED'
          AND fr.next_scheduled_start_time <= :before
          AND d.concurrency_limit IS NULL AND d.concurrency_limit_id IS NULL
          AND (fr.empirical_policy->>'retry_type' IS NULL
               OR fr.empirical_policy->>'retry_type' != 'in_process')
        ORDER BY fr.next_scheduled_start_time
        LIMIT LEAST(:limit, queue.available)
        FOR UPDATE OF fr SKIP LOCKED
    ) picked
    ORDER BY queue.priority, picked.next_scheduled_start_time
    LIMIT LEAST(:limit, (SELECT available FROM pool_slots))
    """
)

_LIMITED_DUE = sa.text(
    """
    SELECT fr.id FROM flow_run fr
    JOIN work_queue wq ON wq.id = fr.work_queue_id
    JOIN work_pool wp ON wp.id = wq.work_pool_id
    JOIN deployment d ON d.id = fr.deployment_id
    WHERE wp.name = :pool AND fr.state_type = 'SCHEDULED'
      AND fr.next_scheduled_start_time <= :before
      AND (d.concurrency_limit IS NOT NULL OR d.concurrency_limit_id IS NOT NULL)
    ORDER BY fr.next_scheduled_start_time
    LIMIT :limit
    """
)

_ORPHANS = sa.text(
    """
    SELECT fr.id FROM flow_run fr
    JOIN work_queue wq ON wq.id = fr.work_queue_id
    JOIN work_pool wp ON wp.id = wq.work_pool_id
    WHERE wp.name = :pool AND fr.state_type IN ('SCHEDULED', 'PENDING')
      AND fr.deployment_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM deployment d WHERE d.id = fr.deployment_id)
    ORDER BY fr.next_scheduled_start_time
    LIMIT :limit
    FOR UPDATE OF fr SKIP LOCKED
    """
)


# A claim repeated after its answer was lost: the runs it moved to Pending, by its transition id.
_CLAIMED_BY = sa.text(
    """
    SELECT fr.id FROM flow_run fr
    JOIN flow_run_state s ON s.id = fr.state_id
    JOIN work_queue wq ON wq.id = fr.work_queue_id
    JOIN work_pool wp ON wp.id = wq.work_pool_id
    WHERE wp.name = :pool AND fr.state_type = 'PENDING'
      AND s.state_details->>'transition_id' = :transition_id
    """
)


class Claimed(BaseModel, frozen=True):
    """A run this call moved to Pending, with what the worker needs to run it (the route
    answers with it as it is)."""

    id: uuid.UUID
    pending_state_id: uuid.UUID
    scheduled_time: dt.datetime
    expected_start_time: dt.datetime | None
    deployment_id: uuid.UUID | None
    parameters: dict[str, Any]
    run_count: int
    auto_scheduled: bool


@dataclasses.dataclass(frozen=True)
class Claim:
    """What a claim found: runs now Pending, due runs left to Prefect's normal path (their
    tasks have concurrency limits), and orphans it cancelled."""

    claimed: list[Claimed]
    limited: list[uuid.UUID]
    cancelled_orphans: int


async def claim(
    db: PrefectDBInterface,
    session: AsyncSession,
    *,
    pool: str,
    before: dt.datetime,
    limit: int,
    transition_id: uuid.UUID,
    repeat: bool = False,
) -> Claim:
    """Move up to ``limit`` due runs of ``pool`` to Pending, in the caller's transaction.

    ``repeat``: the caller sent this claim (its ``transition_id``) before and lost the answer;
    if that one was applied, its runs are answered again and nothing more is claimed, so no run
    is left Pending with nobody holding it.
    """
    if repeat:
        params = {"pool": pool, "transition_id": str(transition_id)}
        again = list((await session.execute(_CLAIMED_BY, params)).scalars())
        if again:
            return Claim(await _pending(db, session, again), [], 0)
    ids = list(
        (
            await session.execute(_CLAIMABLE, {"pool": pool, "before": before, "limit": limit})
        ).scalars()
    )
    limited = list(
        (
            await session.execute(_LIMITED_DUE, {"pool": pool, "before": before, "limit": limit})
        ).scalars()
    )
    orphans = list(
        (await session.execute(_ORPHANS, {"pool": pool, "limit": ORPHANS_PER_CLAIM})).scalars()
    )
    cancelled = await deletion.cancel(db, session, orphans)
    if not ids:
        return Claim([], limited, cancelled)
    now = rows.now()
    claimed: list[Claimed] = []
    pending_states: dict[uuid.UUID, states.State] = {}
    for row in await _runs(db, session, ids):
        scheduled = row.state_details.scheduled_time or row.next_scheduled_start_time
        pending = rows.state(
            states.StateType.PENDING,
            row.id,
            now,
            scheduled_time=scheduled,
            transition_id=transition_id,
        )
        pending_states[row.id] = pending
        claimed.append(_claimed(row, pending.id, scheduled))
    await rows.write(db, session, pending_states, now, extra={"next_scheduled_start_time": None})
    return Claim(claimed, limited, cancelled)


async def _runs(db: PrefectDBInterface, session: AsyncSession, ids: list[uuid.UUID]) -> list[Any]:
    """What a claim answers of each run, with its current state's details."""
    fr = runs_table(db)
    frs = states_table(db)
    query = (
        sa.select(
            fr.c.id,
            fr.c.state_id,
            fr.c.next_scheduled_start_time,
            fr.c.expected_start_time,
            fr.c.deployment_id,
            fr.c.parameters,
            fr.c.run_count,
            fr.c.auto_scheduled,
            frs.c.state_details,
        )
        .join(frs, frs.c.id == fr.c.state_id)
        .where(fr.c.id.in_(ids))
    )
    return list((await session.execute(query)).all())


def _claimed(row: Any, pending_state_id: uuid.UUID, scheduled: dt.datetime) -> Claimed:
    return Claimed(
        id=row.id,
        pending_state_id=pending_state_id,
        scheduled_time=scheduled,
        expected_start_time=row.expected_start_time,
        deployment_id=row.deployment_id,
        parameters=dict(row.parameters or {}),
        run_count=row.run_count,
        auto_scheduled=row.auto_scheduled,
    )


async def _pending(
    db: PrefectDBInterface, session: AsyncSession, ids: list[uuid.UUID]
) -> list[Claimed]:
    """Runs an earlier claim moved to Pending, as that claim answered them."""
    return [
        _claimed(row, row.state_id, row.state_details.scheduled_time)
        for row in await _runs(db, session, ids)
    ]
