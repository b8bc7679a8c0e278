"""Set-based orchestration of fast-lane runs: claim, start and finish hundreds in one transaction.

Prefect's REST orchestration, bulk endpoints included, handles each run in its own transaction:
about a dozen statements, up to 31 rules and a state event per write, ~21 ms of server CPU. The
fast lane's common path needs a handful of those rules, and each one is a column update that
SQL can apply to a whole set of runs at once. This module writes, for sets of runs, the same
rows Prefect's own orchestration writes for the same transitions (``tests/integration/
test_fastpath_contract.py`` compares them column by column, so a Prefect upgrade that changes
them fails loudly; Prefect's version is pinned):

- **claim** ``Scheduled → Pending``: the runs of the pool's queues due before a time, earliest
  first, locked with ``FOR UPDATE SKIP LOCKED`` so two workers never claim the same run, within
  the pool's and its queues' concurrency limits (Prefect's own worker query, narrowed: runs of
  deployments that no longer exist, or that have a concurrency limit, are left out — they go
  Prefect's normal way, so they can never crowd the others out of a claim). The Pending state
  carries the run's scheduled time (``CopyScheduledTime``); ``next_scheduled_start_time`` is
  cleared.
- **start** ``Pending → Running``: a conditional update on the very Pending state the claim
  wrote, so a run cancelled (or changed in any way) while held never starts; ``start_time``
  on the first start, ``run_count`` + 1; the Running state event is published (the run's
  end event follows it, and Prefect's triggers wait for the event an event follows).
- **finish** ``Running → Completed``: again conditional on the Running state; ``end_time``,
  ``total_run_time`` + the time since Running; the job's log lines are inserted in the same
  transaction; the terminal state event automations need is published.

Each call may be repeated after its answer was lost, with the same transition id: a repeated
claim answers the runs the first one claimed, a repeated start or finish counts the runs the
first one moved as moved by it, and log lines keep the ids their sender gave them, so none is
stored twice.

The claim lives in ``claims``, the row writing all three share in ``rows``.

What may stay on Prefect's normal path: runs of concurrency-limited tasks, retries, failures,
timeouts and cancels (each its own message), all through Prefect's ``set_state``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from prefect.server.database import PrefectDBInterface
from prefect.server.schemas import states
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from taskscheduler._prefect.server import rows
from taskscheduler._prefect.server.claims import Claim, Claimed, claim
from taskscheduler._prefect.server.rows import logs_table, runs_table, states_table

__all__ = ["Claim", "Claimed", "Transition", "claim", "finish", "start"]


@dataclasses.dataclass(frozen=True)
class Transition:
    """A run to move on, and the state id it must still be in."""

    id: uuid.UUID
    expected_state_id: uuid.UUID
    name: str | None = None  # the new state's name ("Retrying" instead of "Running")


async def start(
    db: PrefectDBInterface,
    session: AsyncSession,
    runs: Sequence[Transition],
    *,
    transition_id: uuid.UUID,
) -> dict[uuid.UUID, uuid.UUID]:
    """Move runs still in their claimed Pending state to Running; the Running state of each
    run that started, by run id."""
    if not runs:
        return {}
    fr = runs_table(db)
    expected = {r.id: r for r in runs}
    current, repeated = await _still_in(db, session, runs, transition_id)
    if not current:
        return repeated
    now = rows.now()
    running = {}
    for run_id in current:
        state = rows.state(states.StateType.RUNNING, run_id, now, transition_id=transition_id)
        state.name = expected[run_id].name or state.name
        running[run_id] = state
    await rows.write(
        db,
        session,
        running,
        now,
        extra={
            "start_time": sa.func.coalesce(fr.c.start_time, now),
            "run_count": fr.c.run_count + 1,
        },
    )
    # Published because the run's next event (its end, set here or through Prefect's REST
    # orchestration) names this one as the event it follows, and Prefect's triggers hold an
    # event whose predecessor they have not seen for up to 15 minutes: a failed job's
    # notification waited that long. It names no predecessor itself: the claim's Pending
    # state is published by no one.
    await rows.publish(db, session, running, current, follows=False)
    return repeated | {run_id: state.id for run_id, state in running.items()}


async def finish(
    db: PrefectDBInterface,
    session: AsyncSession,
    runs: Sequence[Transition],
    *,
    transition_id: uuid.UUID,
    logs: Sequence[dict[str, Any]] = (),
) -> list[uuid.UUID]:
    """Insert the logs, then move runs still in their Running state to Completed and publish
    their state events; the ids that completed."""
    if logs:
        await session.execute(
            postgresql.insert(logs_table(db)).on_conflict_do_nothing(),
            [rows.log_row(log) for log in logs],
        )
    if not runs:
        return []
    fr = runs_table(db)
    running, repeated = await _still_in(db, session, runs, transition_id)
    if not running:
        return list(repeated)
    now = rows.now()
    completed = {
        run_id: rows.state(states.StateType.COMPLETED, run_id, now, transition_id=transition_id)
        for run_id in running
    }
    await rows.write(
        db,
        session,
        completed,
        now,
        extra={"end_time": now, "start_time": sa.func.coalesce(fr.c.start_time, now)},
        run_time_since={run_id: row.timestamp for run_id, row in running.items()},
    )
    await rows.publish(db, session, completed, running)
    return [*repeated, *running]


async def _still_in(
    db: PrefectDBInterface,
    session: AsyncSession,
    runs: Sequence[Transition],
    transition_id: uuid.UUID,
) -> tuple[dict[uuid.UUID, Any], dict[uuid.UUID, uuid.UUID]]:
    """Those of ``runs`` whose current state is still the expected one, locked, with that
    state's row (finish needs its time and publishes it as the initial state); and those an
    earlier call with this ``transition_id`` already moved, with their current state id."""
    fr = runs_table(db)
    frs = states_table(db)
    found = await session.execute(
        sa.select(frs)
        .join(fr, fr.c.state_id == frs.c.id)
        .where(fr.c.id.in_([r.id for r in runs]))
        .order_by(fr.c.id)  # the lock order of ``deletion``
        .with_for_update(of=fr)
    )
    expected = {r.id: r.expected_state_id for r in runs}
    current: dict[uuid.UUID, Any] = {}
    repeated: dict[uuid.UUID, uuid.UUID] = {}
    for row in found:
        if row.id == expected[row.flow_run_id]:
            current[row.flow_run_id] = row
        elif row.state_details.transition_id == transition_id:
            repeated[row.flow_run_id] = row.id
    return current, repeated
