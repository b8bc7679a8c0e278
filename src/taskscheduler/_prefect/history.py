"""The web page's charts, read from Prefect's own tables in SQL: a task's latest started runs,
and the platform's last hour a minute at a time (Prefect's API has no group-by).

Like ``tables``, these lean on Prefect's schema (``flow_run``, ``flow_run_state``,
``deployment``), pinned with Prefect's version. Delays are start time minus scheduled time,
as ``mapping.to_job`` computes them; a job counts as late when Prefect marked it Late.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

Row = dict[str, Any]

_TASK_RUNS_SQL = """
SELECT fr.id, fr.name, fr.state_type, fr.state_name,
       fr.expected_start_time AS scheduled, fr.start_time, fr.end_time,
       extract(epoch FROM fr.start_time - fr.expected_start_time) AS delay,
       extract(epoch FROM fr.end_time - fr.start_time) AS duration
FROM flow_run fr JOIN deployment d ON d.id = fr.deployment_id
WHERE d.name = :name AND fr.start_time IS NOT NULL
ORDER BY fr.expected_start_time DESC NULLS LAST, fr.start_time DESC
LIMIT :limit
"""
_PER_MINUTE_SQL = """
SELECT extract(epoch FROM date_trunc('minute', start_time)) AS minute, count(*) AS started,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY delay) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY delay) AS p99
FROM (
  SELECT start_time, extract(epoch FROM start_time - expected_start_time) AS delay
  FROM flow_run
  WHERE deployment_id IS NOT NULL AND start_time > now() - interval '1 hour'
) s
GROUP BY 1 ORDER BY 1
"""
_OUTCOMES_SQL = """
SELECT
  (SELECT count(DISTINCT s.flow_run_id) FROM flow_run_state s
     JOIN flow_run fr ON fr.id = s.flow_run_id
   WHERE s.name = 'Late' AND fr.deployment_id IS NOT NULL
     AND s.timestamp > now() - interval '1 hour') AS late_hour,
  (SELECT count(DISTINCT s.flow_run_id) FROM flow_run_state s
     JOIN flow_run fr ON fr.id = s.flow_run_id
   WHERE s.name = 'Late' AND fr.deployment_id IS NOT NULL
     AND s.timestamp > now() - interval '1 day') AS late_day,
  count(*) FILTER (WHERE end_time > now() - interval '1 hour') AS failed_hour,
  count(*) AS failed_day,
  extract(epoch FROM now()) AS now
FROM flow_run
WHERE deployment_id IS NOT NULL AND state_type IN ('FAILED', 'CRASHED')
  AND end_time > now() - interval '1 day'
"""


@dataclasses.dataclass(frozen=True)
class PlatformHistory:
    """The platform's recent past, as rows."""

    per_minute: list[Row]  # minute (unix seconds), started, p50, p99
    outcomes: Row  # late_hour, late_day, failed_hour, failed_day, now (unix seconds)


async def task_runs(engine: AsyncEngine, deployment: str, *, limit: int = 100) -> list[Row]:
    """The latest ``limit`` started runs of a deployment (by name), oldest first."""
    async with engine.connect() as conn:
        found = await conn.execute(text(_TASK_RUNS_SQL), {"name": deployment, "limit": limit})
        rows = [dict(r) for r in found.mappings()]
    return rows[::-1]


async def platform_history(engine: AsyncEngine) -> PlatformHistory:
    """Jobs started and their delays a minute at a time over the last hour; late and failed
    jobs over the last hour and day."""
    async with engine.connect() as conn:
        per_minute = [dict(r) for r in (await conn.execute(text(_PER_MINUTE_SQL))).mappings()]
        outcomes = dict((await conn.execute(text(_OUTCOMES_SQL))).mappings().one())
    return PlatformHistory(per_minute, outcomes)
