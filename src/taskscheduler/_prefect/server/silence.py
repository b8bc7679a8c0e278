"""Running jobs that stopped giving signs of life: one query, for the watchdog's crash rule.

Prefect's documented zombie detection is a proactive automation (no heartbeat within N
seconds of the Running state or of the last heartbeat). Its price is paid per job: the
triggers service opens a bucket in an advisory-locked transaction on the Running event, and
again on every heartbeat and on the job's end, whether the job ever dies or not. The same
rule read from the rows Prefect already keeps costs one indexed query a watchdog round,
whatever the job rate: a job is silent since ``since`` when its Running state began before
it and no ``prefect.flow-run.heartbeat`` event of it occurred at or after it (the events
table's ``(event, resource_id, occurred)`` index).

Heartbeats are read once Prefect's event persister has written them (it flushes every few
seconds); ``since`` must lie further back than that, which a ``zombie_after`` of several
heartbeat intervals does by far.
"""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from taskscheduler.reliability import HEARTBEAT_EVENT

_SILENT = sa.text(
    """
    SELECT fr.id FROM flow_run fr
    WHERE fr.state_type = 'RUNNING'
      AND fr.state_timestamp < :since
      AND NOT EXISTS (
          SELECT 1 FROM events e
          WHERE e.event = :heartbeat
            AND e.resource_id = 'prefect.flow-run.' || fr.id::text
            AND e.occurred >= :since
      )
    ORDER BY fr.state_timestamp, fr.id
    LIMIT :limit
    """
)


async def silent_since(session: AsyncSession, since: dt.datetime, limit: int) -> list[uuid.UUID]:
    """Up to ``limit`` running flow runs silent since ``since``, the longest running first."""
    found = await session.execute(
        _SILENT, {"since": since, "heartbeat": HEARTBEAT_EVENT, "limit": limit}
    )
    return [row[0] for row in found]
