"""The fast lane's pools shown as polled, and their deployments as ready, at a bounded cost.

A Prefect worker's poll (``POST /work_pools/{name}/get_scheduled_flow_runs``) records the poll
on the pool's queues and marks **every** deployment of those queues ready: it locks and updates
each deployment's row (``status``, ``last_polled``), every poll of every worker; 10,000 recurring
tasks on one pool cost 10,000 row updates a poll. The fast lane's claim does not go through that
route, so without this its deployments stayed "Not Ready" in the Prefect UI for ever.

Prefect's foreman service marks a deployment not ready only when both its own ``last_polled``
and its queue's are older than its timeout (60 s by default). So a deployment needs its row
written once, when it becomes ready; after that, keeping the queue's ``last_polled`` fresh keeps
it ready. Here, at most every ``REFRESH`` per pool and API process, after a claim has answered:

- the pool's queues get their poll recorded, and those not ready (not paused ones) are marked
  ready, with their ``prefect.work-queue.ready`` events (Prefect's ``mark_work_queues_ready``);
- the pool's deployments that are not ready, at most ``MAX_DEPLOYMENTS`` a round, are marked
  ready, with their ``prefect.deployment.ready`` events (Prefect's ``mark_deployments_ready``);
  while some are left, the next claim starts the next round.

Both writes are Prefect's own functions, so the rows and events are those of a Prefect worker's
poll; only which rows are written, and how often, differ.
"""

from __future__ import annotations

import logging
import time
import uuid

import sqlalchemy as sa
from prefect.server.database import PrefectDBInterface
from prefect.server.models import deployments, work_queues
from prefect.server.schemas.statuses import DeploymentStatus, WorkQueueStatus

# Well inside the foreman's timeouts (60 s each by default), so a polled pool never flaps.
REFRESH = 10.0
# Deployments marked a round: Prefect's function locks their rows (``FOR UPDATE``, which waits
# for the scheduler's inserts of their runs and holds those up) while it reads each one's
# related objects for its event, so rounds stay small; a full round asks for the next at once.
MAX_DEPLOYMENTS = 200

log = logging.getLogger(__name__)

# Pool name -> monotonic time of this process's last round for it.
_last_round: dict[str, float] = {}


def due(pool: str, *, now: float | None = None) -> bool:
    """Whether this process should mark ``pool`` again; counts the round as begun if so."""
    at = time.monotonic() if now is None else now
    if at - _last_round.get(pool, -REFRESH) < REFRESH:
        return False
    _last_round[pool] = at
    return True


async def mark_polled(db: PrefectDBInterface, pool: str) -> int:
    """Record a poll of ``pool``'s queues and mark its deployments that are not ready ready, as
    a Prefect worker's poll would; how many deployments became ready."""
    async with db.session_context() as session:
        queues = (
            await session.execute(
                sa.select(db.WorkQueue.id, db.WorkQueue.status)
                .join(db.WorkPool, db.WorkPool.id == db.WorkQueue.work_pool_id)
                .where(db.WorkPool.name == pool)
            )
        ).all()
        if not queues:
            return 0
        unready: list[uuid.UUID] = list(
            (
                await session.execute(
                    sa.select(db.Deployment.id)
                    .where(
                        db.Deployment.work_queue_id.in_([q.id for q in queues]),
                        db.Deployment.status != DeploymentStatus.READY,
                    )
                    .order_by(db.Deployment.id)
                    .limit(MAX_DEPLOYMENTS)
                )
            ).scalars()
        )
    await work_queues.mark_work_queues_ready(
        db=db,
        polled_work_queue_ids=[q.id for q in queues if q.status != WorkQueueStatus.NOT_READY],
        ready_work_queue_ids=[q.id for q in queues if q.status == WorkQueueStatus.NOT_READY],
    )
    if unready:
        await deployments.mark_deployments_ready(db=db, deployment_ids=unready)
    return len(unready)


async def refresh(db: PrefectDBInterface, pool: str) -> None:
    """``mark_polled`` after a claim's answer: a failure (a lock or statement timeout) is logged
    and the next round, one ``REFRESH`` later, tries again; a claim never fails for it."""
    try:
        if await mark_polled(db, pool) >= MAX_DEPLOYMENTS:
            _last_round.pop(pool, None)
    except (sa.exc.SQLAlchemyError, OSError, TimeoutError) as exc:
        log.warning("marking pool %r polled failed: %r", pool, exc)
