"""Deleting a deployment and ending its held runs in the same transaction.

Prefect's ``DELETE /deployments/{id}`` deletes the deployment's Scheduled runs but leaves its
Pending ones: those a worker has claimed and holds for their instant. Cancelling those one REST
call at a time before the delete costs a round trip and an orchestration each, and a held run
whose instant came during those calls started although its task was being deleted. Here the
deployment's waiting runs are locked first (a claim in flight commits before; later claims skip
them), the Pending ones cancelled, and Prefect's own delete run, all in one transaction: a held
run either started before the delete or never starts, since the fast lane's start is
conditional on the very Pending state its claim wrote.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from prefect.server.database import PrefectDBInterface
from prefect.server.models import deployments
from prefect.server.schemas import states
from sqlalchemy.ext.asyncio import AsyncSession

from taskscheduler._prefect.server import rows
from taskscheduler._prefect.server.rows import runs_table, states_table
from taskscheduler.policy import TASK_DELETED

# In id order, as the fast lane's start locks its runs: two transactions never wait on each other
# in a circle.
_WAITING = sa.text(
    """
    SELECT fr.id, fr.state_type FROM flow_run fr
    WHERE fr.deployment_id = :deployment AND fr.state_type IN ('SCHEDULED', 'PENDING')
    ORDER BY fr.id
    FOR UPDATE
    """
)


async def delete_deployment(
    db: PrefectDBInterface, session: AsyncSession, deployment_id: uuid.UUID
) -> bool:
    """Cancel the deployment's Pending runs, then delete it (and, as Prefect does, its
    Scheduled runs), in the caller's transaction; whether it existed."""
    waiting = (await session.execute(_WAITING, {"deployment": deployment_id})).all()
    await cancel(db, session, [row.id for row in waiting if row.state_type == "PENDING"])
    # Prefect's db_injector hides the coroutine from mypy.
    deleted = await deployments.delete_deployment(session=session, deployment_id=deployment_id)  # type: ignore[attr-defined]
    return bool(deleted)


async def cancel(
    db: PrefectDBInterface, session: AsyncSession, run_ids: Sequence[uuid.UUID]
) -> int:
    """Cancel waiting runs of a deleted task (locked by the caller), with the state events
    Prefect's orchestration would publish; how many."""
    if not run_ids:
        return 0
    fr = runs_table(db)
    frs = states_table(db)
    current = {
        row.flow_run_id: row
        for row in await session.execute(
            sa.select(frs).join(fr, fr.c.state_id == frs.c.id).where(fr.c.id.in_(run_ids))
        )
    }
    now = rows.now()
    cancelled = {}
    for run_id in run_ids:
        state = rows.state(states.StateType.CANCELLED, run_id, now)
        state.message = TASK_DELETED
        cancelled[run_id] = state
    await rows.write(
        db,
        session,
        cancelled,
        now,
        # Prefect sets a start time on the final state of a run that never started, too.
        extra={
            "end_time": now,
            "start_time": sa.func.coalesce(fr.c.start_time, now),
            "next_scheduled_start_time": None,
        },
    )
    await rows.publish(db, session, cancelled, current)
    return len(run_ids)
