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
  on the first start, ``run_count`` + 1.
- **finish** ``Running → Completed``: again conditional on the Running state; ``end_time``,
  ``total_run_time`` + the time since Running; the job's log lines are inserted in the same
  transaction; the terminal state event automations need is published.

What may stay on Prefect's normal path: runs of concurrency-limited tasks, retries, failures,
timeouts and cancels (each its own message), all through Prefect's ``set_state``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any, cast

import sqlalchemy as sa
from prefect.server.database import PrefectDBInterface
from prefect.server.events.clients import PrefectServerEventsClient
from prefect.server.models import events as state_events
from prefect.server.schemas import states
from sqlalchemy.ext.asyncio import AsyncSession

# Runs of deployments that are gone: cancelled by a claim that meets them, a bounded number
# per call, so a deleted task's runs never clog the lane.
ORPHANS_PER_CLAIM = 200
DELETED = "Its task was deleted before it started"

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


@dataclasses.dataclass(frozen=True)
class Claimed:
    """A run this call moved to Pending, with what the worker needs to run it."""

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


@dataclasses.dataclass(frozen=True)
class Transition:
    """A run to move on, and the state id it must still be in."""

    id: uuid.UUID
    expected_state_id: uuid.UUID
    name: str | None = None  # the new state's name ("Retrying" instead of "Running")


def runs_table(db: PrefectDBInterface) -> sa.Table:
    """Prefect's ``flow_run`` table."""
    return cast(sa.Table, db.FlowRun.__table__)


def states_table(db: PrefectDBInterface) -> sa.Table:
    """Prefect's ``flow_run_state`` table."""
    return cast(sa.Table, db.FlowRunState.__table__)


def logs_table(db: PrefectDBInterface) -> sa.Table:
    """Prefect's ``log`` table."""
    return cast(sa.Table, db.Log.__table__)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _state(
    type: states.StateType, run_id: uuid.UUID, at: dt.datetime, **details: Any
) -> states.State:
    return states.State(
        type=type,
        timestamp=at,
        state_details=states.StateDetails(flow_run_id=run_id, **details),
    )


async def claim(
    db: PrefectDBInterface,
    session: AsyncSession,
    *,
    pool: str,
    before: dt.datetime,
    limit: int,
    transition_id: uuid.UUID,
) -> Claim:
    """Move up to ``limit`` due runs of ``pool`` to Pending, in the caller's transaction."""
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
    cancelled = await _cancel_orphans(db, session, orphans)
    if not ids:
        return Claim([], limited, cancelled)
    fr = runs_table(db)
    frs = states_table(db)
    rows = (
        await session.execute(
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
    ).all()
    now = _now()
    claimed: list[Claimed] = []
    new_states: list[dict[str, Any]] = []
    for row in rows:
        scheduled = row.state_details.scheduled_time or row.next_scheduled_start_time
        pending = _state(
            states.StateType.PENDING,
            row.id,
            now,
            scheduled_time=scheduled,
            transition_id=transition_id,
        )
        new_states.append(_state_row(pending, row.id))
        claimed.append(
            Claimed(
                id=row.id,
                pending_state_id=pending.id,
                scheduled_time=scheduled,
                expected_start_time=row.expected_start_time,
                deployment_id=row.deployment_id,
                parameters=dict(row.parameters or {}),
                run_count=row.run_count,
                auto_scheduled=row.auto_scheduled,
            )
        )
    await _write(db, session, new_states, now, extra={"next_scheduled_start_time": None})
    return Claim(claimed, limited, cancelled)


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
    current = await _still_in(db, session, runs)
    now = _now()
    new_states = [
        _state_row(
            _state(states.StateType.RUNNING, run_id, now, transition_id=transition_id),
            run_id,
            name=expected[run_id].name,
        )
        for run_id in current
    ]
    if not new_states:
        return {}
    await _write(
        db,
        session,
        new_states,
        now,
        extra={
            "start_time": sa.func.coalesce(fr.c.start_time, now),
            "run_count": fr.c.run_count + 1,
        },
    )
    return {row["flow_run_id"]: row["id"] for row in new_states}


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
        await session.execute(sa.insert(logs_table(db)), [_log_row(log) for log in logs])
    if not runs:
        return []
    fr = runs_table(db)
    frs = states_table(db)
    current = await _still_in(db, session, runs)
    if not current:
        return []
    running = {
        row.flow_run_id: row
        for row in (
            await session.execute(
                sa.select(frs).where(
                    frs.c.id.in_([r.expected_state_id for r in runs if r.id in current])
                )
            )
        ).all()
    }
    now = _now()
    completed = {
        run_id: _state(states.StateType.COMPLETED, run_id, now, transition_id=transition_id)
        for run_id in current
    }
    await _write(
        db,
        session,
        [_state_row(state, run_id) for run_id, state in completed.items()],
        now,
        extra={"end_time": now, "start_time": sa.func.coalesce(fr.c.start_time, now)},
        run_time_since={run_id: row.timestamp for run_id, row in running.items()},
    )
    await _publish(db, session, completed, running)
    return list(current)


async def _still_in(
    db: PrefectDBInterface, session: AsyncSession, runs: Sequence[Transition]
) -> set[uuid.UUID]:
    """Those of ``runs`` whose current state is still the expected one, locked."""
    fr = runs_table(db)
    rows = await session.execute(
        sa.select(fr.c.id, fr.c.state_id).where(fr.c.id.in_([r.id for r in runs])).with_for_update()
    )
    expected = {r.id: r.expected_state_id for r in runs}
    return {row.id for row in rows if row.state_id == expected[row.id]}


async def _write(
    db: PrefectDBInterface,
    session: AsyncSession,
    new_states: list[dict[str, Any]],
    now: dt.datetime,
    *,
    extra: dict[str, Any],
    run_time_since: dict[uuid.UUID, dt.datetime] | None = None,
) -> None:
    """Insert the new states and point each run at its own, in two statements for the set.

    ``extra``: columns set alike on every run. ``run_time_since``: when each run entered the
    state it leaves, to add the time since to its ``total_run_time`` (``IncrementRunTime``).
    """
    fr = runs_table(db)
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


def _state_row(
    state: states.State, run_id: uuid.UUID, *, name: str | None = None
) -> dict[str, Any]:
    """A ``flow_run_state`` row, as Prefect's ORM writes it from a state."""
    return {
        "id": state.id,
        "type": state.type,
        "name": name or state.name,
        "timestamp": state.timestamp,
        "message": state.message,
        "state_details": state.state_details,
        "flow_run_id": run_id,
    }


def _log_row(log: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "name": log["name"],
        "level": log["level"],
        "message": log["message"],
        "timestamp": log["timestamp"],
        "flow_run_id": log.get("flow_run_id"),
        "task_run_id": log.get("task_run_id"),
    }


async def _cancel_orphans(
    db: PrefectDBInterface, session: AsyncSession, run_ids: list[uuid.UUID]
) -> int:
    """Cancel waiting runs whose deployment is gone (a deleted task's): nothing can run them."""
    if not run_ids:
        return 0
    now = _now()
    new_states = []
    for run_id in run_ids:
        state = _state(states.StateType.CANCELLED, run_id, now)
        state.message = DELETED
        new_states.append(_state_row(state, run_id))
    await _write(
        db, session, new_states, now, extra={"end_time": now, "next_scheduled_start_time": None}
    )
    return len(run_ids)


async def _publish(
    db: PrefectDBInterface,
    session: AsyncSession,
    validated: dict[uuid.UUID, states.State],
    initial: dict[uuid.UUID, Any],
) -> None:
    """The state-change events of terminal transitions, built by Prefect's own function as its
    orchestration emits them (automations, notifications and the UI's event feed rely on
    them)."""
    orm_runs = (
        await session.execute(sa.select(db.FlowRun).where(db.FlowRun.id.in_(list(validated))))
    ).scalars()
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
            await events.emit(
                await state_events.flow_run_state_change_event(
                    session=session,
                    occurred=state.timestamp,
                    flow_run=run,
                    initial_state_id=initial_state.id if initial_state else None,
                    initial_state=initial_state,
                    validated_state_id=state.id,
                    validated_state=state,
                )
            )
