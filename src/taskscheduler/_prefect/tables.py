"""Monitoring's reads of Prefect's own tables, in SQL (one statement per figure, whatever the
number of runs): what the API would need thousands of calls for.

These queries lean on Prefect's schema (``flow_run``, ``deployment``, ``work_pool``,
``worker``), which changes only with Prefect's version, pinned in ``pyproject.toml``;
``tests/integration/test_monitoring.py`` compares their figures with what Prefect reports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

Row = dict[str, Any]


def _delay_sql(buckets: Sequence[float]) -> str:
    return (
        "SELECT "  # noqa: S608 - built from the constant bucket bounds only
        + ", ".join(
            f"count(*) FILTER (WHERE delay <= {float(b)}) AS b{i}" for i, b in enumerate(buckets)
        )
        + """, count(*) AS total, coalesce(sum(delay), 0) AS total_delay
FROM (
  SELECT extract(epoch FROM start_time - expected_start_time) AS delay
  FROM flow_run WHERE start_time IS NOT NULL AND deployment_id IS NOT NULL
) s
"""
    )


_JOBS_SQL = """
SELECT coalesce(d.name, '(deleted)') AS task, fr.state_type AS state, count(*) AS n
FROM flow_run fr LEFT JOIN deployment d ON d.id = fr.deployment_id
WHERE fr.deployment_id IS NOT NULL
GROUP BY 1, 2
"""
_BACKLOG_SQL = """
SELECT count(*) AS scheduled,
       count(*) FILTER (WHERE coalesce(next_scheduled_start_time, expected_start_time) <= now())
         AS due,
       count(*) FILTER (WHERE state_name = 'Late') AS late
FROM flow_run WHERE state_type = 'SCHEDULED' AND deployment_id IS NOT NULL
"""
_LATE_SQL = """
SELECT fr.id, fr.name, coalesce(d.name, '(deleted)') AS task,
       extract(epoch FROM now() - coalesce(fr.next_scheduled_start_time, fr.expected_start_time))
         AS late_by
FROM flow_run fr LEFT JOIN deployment d ON d.id = fr.deployment_id
WHERE fr.state_type = 'SCHEDULED' AND fr.deployment_id IS NOT NULL
  AND coalesce(fr.next_scheduled_start_time, fr.expected_start_time) <= now()
ORDER BY 4 DESC LIMIT :limit
"""
_POOLS_SQL = """
SELECT wp.name AS pool, wp.type, wp.status, wp.is_paused,
       w.name AS worker, w.status AS worker_status, w.last_heartbeat_time
FROM work_pool wp LEFT JOIN worker w ON w.work_pool_id = wp.id
ORDER BY wp.name, w.name
"""
_OUTCOMES_SQL = """
SELECT count(*) FILTER (WHERE state_type IN ('FAILED', 'CRASHED')) AS failed, count(*) AS ended
FROM flow_run
WHERE end_time > now() - interval '1 hour' AND deployment_id IS NOT NULL
  AND state_type IN ('COMPLETED', 'FAILED', 'CRASHED')
"""
_CANARY_SQL = """
SELECT extract(epoch FROM fr.start_time - fr.expected_start_time) AS delay,
       extract(epoch FROM fr.start_time) AS started
FROM flow_run fr JOIN deployment d ON d.id = fr.deployment_id
WHERE d.name = :name AND fr.start_time IS NOT NULL
ORDER BY fr.start_time DESC LIMIT 1
"""


@dataclasses.dataclass(frozen=True)
class Figures:
    """One reading of Prefect's tables, as rows."""

    jobs: list[Row]  # task, state, n
    delay: Row  # b0..bN (runs at most that late), total, total_delay
    backlog: Row  # scheduled, due, late
    late_jobs: list[Row]  # id, name, task, late_by
    pools: list[Row]  # pool, type, status, is_paused, worker, worker_status, last_heartbeat_time
    outcomes: Row  # failed, ended (last hour)


async def read_figures(engine: AsyncEngine, *, buckets: Sequence[float], late: int) -> Figures:
    """Every figure, in one connection."""
    async with engine.connect() as conn:
        jobs = [dict(r) for r in (await conn.execute(text(_JOBS_SQL))).mappings()]
        delay = dict((await conn.execute(text(_delay_sql(buckets)))).mappings().one())
        backlog = dict((await conn.execute(text(_BACKLOG_SQL))).mappings().one())
        found = (await conn.execute(text(_LATE_SQL), {"limit": late})).mappings()
        late_jobs = [dict(r) for r in found]
        pools = [dict(r) for r in (await conn.execute(text(_POOLS_SQL))).mappings()]
        outcomes = dict((await conn.execute(text(_OUTCOMES_SQL))).mappings().one())
    return Figures(jobs, delay, backlog, late_jobs, pools, outcomes)


async def last_start(engine: AsyncEngine, deployment: str) -> Row | None:
    """The delay and start of the newest started run of a deployment (by name)."""
    async with engine.connect() as conn:
        row = (await conn.execute(text(_CANARY_SQL), {"name": deployment})).mappings().first()
    return dict(row) if row is not None else None
