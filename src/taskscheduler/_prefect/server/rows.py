"""Rows as Prefect's orchestration writes them: states, run columns, logs, state events.

Shared by the fast path's claim, start and finish (``fastpath``, ``claims``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, cast

import sqlalchemy as sa
from prefect.server.database import PrefectDBInterface
from prefect.server.events.clients import PrefectServerEventsClient
from prefect.server.models import events as state_events
from prefect.server.schemas import states
from sqlalchemy import orm
from sqlalchemy.ext.asyncio import AsyncSession

from taskscheduler._prefect.server import related


def runs_table(db: PrefectDBInterface) -> sa.Table:
    """Prefect's ``flow_run`` table."""
    return cast(sa.Table, db.FlowRun.__table__)


def states_table(db: PrefectDBInterface) -> sa.Table:
    """Prefect's ``flow_run_state`` table."""
    return cast(sa.Table, db.FlowRunState.__table__)


def logs_table(db: PrefectDBInterface) -> sa.Table:
    """Prefect's ``log`` table."""
    return cast(sa.Table, db.Log.__table__)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def state(
    type: states.StateType, run_id: uuid.UUID, at: dt.datetime, **details: Any
) -> states.State:
    return states.State(
        type=type,
        timestamp=at,
        state_details=states.StateDetails(flow_run_id=run_id, **details),
    )


async def write(
    db: PrefectDBInterface,
    session: AsyncSession,
    moved_to: dict[uuid.UUID, states.State],
    now: dt.datetime,
    *,
    extra: dict[str, Any],
    run_time_since: dict[uuid.UUID, dt.datetime] | None = None,
) -> None:
    """Insert each run's new state (``moved_to``, all of one type) and point the run at it, in
    two statements for the set.

    ``extra``: columns set alike on every run. ``run_time_since``: when each run entered the
    state it leaves, to add the time since to its ``total_run_time`` (``IncrementRunTime``).
    """
    fr = runs_table(db)
    new_states = [state_row(state, run_id) for run_id, state in moved_to.items()]
    await session.execute(sa.insert(states_table(db)), new_states)
    since = run_time_since or {}
    moved = sa.values(
        sa.column("run_id", sa.Uuid),
        sa.column("state_id", sa.Uuid),
        sa.column("state_name", sa.String),
        sa.column("ran_for", sa.Interval),
        name="moved",
    ).data(
        [
            (
                row["flow_run_id"],
                row["id"],
                row["name"],
                now - since[row["flow_run_id"]] if row["flow_run_id"] in since else dt.timedelta(0),
            )
            for row in new_states
        ]
    )
    await session.execute(
        sa.update(fr)
        .where(fr.c.id == moved.c.run_id)
        .values(
            state_id=moved.c.state_id,
            state_type=new_states[0]["type"],
            state_name=moved.c.state_name,
            state_timestamp=now,
            total_run_time=fr.c.total_run_time + moved.c.ran_for,
            updated=now,
            **extra,
        )
    )


def state_row(state: states.State, run_id: uuid.UUID) -> dict[str, Any]:
    """A ``flow_run_state`` row, as Prefect's ORM writes it from a state."""
    return {
        "id": state.id,
        "type": state.type,
        "name": state.name,
        "timestamp": state.timestamp,
        "message": state.message,
        "state_details": state.state_details,
        "flow_run_id": run_id,
    }


def log_row(log: dict[str, Any]) -> dict[str, Any]:
    """A ``log`` row; with the id its sender gave it, if any (a resent line is then not
    stored twice)."""
    return {
        "id": log.get("id") or uuid.uuid4(),
        "name": log["name"],
        "level": log["level"],
        "message": log["message"],
        "timestamp": log["timestamp"],
        "flow_run_id": log.get("flow_run_id"),
        "task_run_id": log.get("task_run_id"),
    }


async def publish(
    db: PrefectDBInterface,
    session: AsyncSession,
    validated: dict[uuid.UUID, states.State],
    initial: dict[uuid.UUID, Any],
    *,
    follows: bool = True,
) -> None:
    """The state-change events of these transitions, built by Prefect's own function as its
    orchestration emits them (automations, notifications and the UI's event feed rely on
    them). ``follows=False``: the event names no event it follows (see ``fastpath.start``)."""
    # Only the runs' own columns: their eager loads (the current state, the queue and pool)
    # are not what the events name, and ``related`` reads those for the set at once.
    orm_runs = (
        (
            await session.execute(
                sa.select(db.FlowRun)
                .where(db.FlowRun.id.in_(list(validated)))
                .options(orm.raiseload("*"))
            )
        )
        .scalars()
        .all()
    )
    await related.remember(db, session, orm_runs)
    async with PrefectServerEventsClient() as events:
        for run in orm_runs:
            state = validated[run.id]
            before = initial.get(run.id)
            initial_state = (
                states.State(
                    id=before.id,
                    type=before.type,
                    name=before.name,
                    timestamp=before.timestamp,
                    message=before.message,
                    state_details=before.state_details,
                )
                if before is not None
                else None
            )
            event = await state_events.flow_run_state_change_event(
                session=session,
                occurred=state.timestamp,
                flow_run=run,
                initial_state_id=initial_state.id if initial_state else None,
                initial_state=initial_state,
                validated_state_id=state.id,
                validated_state=state,
            )
            await events.emit(event if follows else event.model_copy(update={"follows": None}))
