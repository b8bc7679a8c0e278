"""Drive the platform through the Prefect API and read the outcome from Prefect's tables."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from taskscheduler import AsyncTaskScheduler
from taskscheduler._prefect import rest as _api
from taskscheduler.platform import LocalPlatform

JSON = dict[str, Any]
# The Prefect server's set-based creation of one-off runs (taskscheduler._prefect.server).
_BULK_JOBS = "taskscheduler/jobs/bulk"


def job_code(hits: str) -> str:
    """A trivial job that records each execution of run ``i`` (to count runs done twice)."""
    return f"def main(i=0):\n    with open({hits!r}, 'a') as f:\n        f.write(f'{{i}}\\n')\n"


def client(platform: LocalPlatform) -> _api.Api:
    """An API client with the platform's credentials."""
    return _api.Api(
        platform.api_url,
        timeout=120.0,
        headers=_api.auth_headers(platform.prefect_auth_string, None),
    )


async def create_tasks(
    platform: LocalPlatform, pool: str, count: int, hits: str | None
) -> list[str]:
    """``count`` tasks on ``pool`` through the SDK; their deployment ids. Their jobs record
    each execution in ``hits``; with None (a lane that cannot write the host, Docker's) they
    only return, and Prefect's records alone tell what ran twice."""
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    code = job_code(hits) if hits is not None else "def main(i=0):\n    return i\n"
    ids = []
    ts = AsyncTaskScheduler()
    try:
        for n in range(count):
            task = await ts.create({"name": f"{prefix}-{n}", "code": code, "pool": pool})
            ids.append(task.deployment_id)
    finally:
        await ts.aclose()
    return ids


async def create_runs(
    api: _api.Api, deployment: str, times: list[float], first: int, *, bulk: bool
) -> None:
    """Runs of ``deployment`` scheduled at ``times``, numbered from ``first``: with ``bulk``
    inserted as Prefect's scheduler inserts runs (``/taskscheduler/jobs/bulk``, ≤ 1,000 per
    call, one transaction), else through Prefect's ``create_flow_run/bulk`` (≤ 100 per call,
    each run orchestrated in its own transaction)."""
    if bulk:
        for start in range(0, len(times), 1000):
            runs = [
                {
                    "scheduled_time": _api.iso(when),
                    "parameters": {"parameters": {"i": first + start + k}},
                    "key": uuid.uuid4().hex,
                }
                for k, when in enumerate(times[start : start + 1000])
            ]
            await api._post(_BULK_JOBS, {"deployment_id": deployment, "runs": runs})
        return
    for start in range(0, len(times), 100):
        body = [
            {
                "state": {
                    "type": "SCHEDULED",
                    "state_details": {"scheduled_time": _api.iso(when)},
                },
                "parameters": {"parameters": {"i": first + start + k}},
            }
            for k, when in enumerate(times[start : start + 100])
        ]
        await api._post(f"deployments/{deployment}/create_flow_run/bulk", body)


async def steady(
    api: _api.Api,
    deployments: list[str],
    rate: float,
    seconds: float,
    lead: float,
    *,
    bulk: bool,
) -> tuple[int, float, float]:
    """``rate`` jobs/min for ``seconds``, each created ``lead`` s before it is due.

    Returns (jobs, first due time, last due time).
    """
    per_second = rate / 60.0
    total = math.floor(per_second * seconds)
    t0 = time.time() + lead
    created = 0
    second = 0
    while created < total:
        target = min(total, math.floor(per_second * (second + 1)))
        times = [t0 + second + (k + 0.5) / (target - created) for k in range(target - created)]
        if times:
            await create_runs(
                api, deployments[second % len(deployments)], times, created, bulk=bulk
            )
        created = target
        second += 1
        wait = t0 + second - lead - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
    return total, t0, t0 + seconds


async def burst(
    api: _api.Api, deployments: list[str], count: int, lead: float, *, bulk: bool
) -> float:
    """``count`` jobs all due at one instant ``lead`` s from now; returns that instant."""
    at = math.ceil(time.time() + lead)
    share = math.ceil(count / len(deployments))
    calls = [
        create_runs(api, d, [at] * min(share, count - n * share), n * share, bulk=bulk)
        for n, d in enumerate(deployments)
        if count - n * share > 0
    ]
    await asyncio.gather(*calls)
    return float(at)


async def recurring(
    pool: str,
    count: int,
    interval: int,
    hits: str,
    spread: bool,
    lead: float,
) -> tuple[list[str], dt.datetime]:
    """``count`` tasks every ``interval`` s, together or spread evenly; their deployment ids and
    their first tick, ``lead`` s after the last of them is expected to exist.

    Created as users create many tasks: the SDK's ``create_many`` (what ``POST /v1/tasks/bulk``
    calls), in the benchmark's process, ``PER_CALL`` tasks a call, two calls at a time. Each
    task's schedule is ``--every … --start …``, so none fires while the others are still being
    created: the first tick is set from the rate at which one call of ``PER_CALL`` pilot tasks
    was created (the pilots tick from tomorrow on, so they never run in the window).
    """
    prefix = f"bench-r{uuid.uuid4().hex[:6]}"
    code = job_code(hits)
    ts = AsyncTaskScheduler()
    semaphore = asyncio.Semaphore(2)
    try:

        async def create(names: range, first: dt.datetime, tag: str) -> list[str]:
            specs = [
                {
                    "name": f"{prefix}-{tag}{n}",
                    "code": code,
                    "pool": pool,
                    **tick_spec(n, count, interval, first, spread),
                }
                for n in names
            ]
            async with semaphore:
                return [t.deployment_id for t in await ts.create_many(specs)]

        started = time.time()
        tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        await create(range(min(count, PER_CALL)), tomorrow, "pilot-")
        per_task = (time.time() - started) / min(count, PER_CALL)
        first = dt.datetime.fromtimestamp(
            round(time.time() + count * per_task * 1.1 + lead), dt.UTC
        )
        calls = [range(n, min(count, n + PER_CALL)) for n in range(0, count, PER_CALL)]
        made = await asyncio.gather(*(create(names, first, "") for names in calls))
    finally:
        await ts.aclose()
    return [d for ids in made for d in ids], first


PER_CALL = 250  # tasks a bulk creation call (at most models.MAX_NEW_TASKS)


def tick_spec(n: int, count: int, interval: int, first: dt.datetime, spread: bool) -> JSON:
    """The schedule of recurring task ``n`` of ``count``, as a task's fields: every
    ``interval`` s from ``first``, or from ``first`` plus its share of the interval when
    ``spread``."""
    offset = dt.timedelta(seconds=interval * n // count) if spread else dt.timedelta(0)
    return {"every": f"{interval}s", "start": (first + offset).isoformat(), "timezone": "UTC"}


async def api_throughput(
    api: _api.Api, deployment: str, pool: str, seconds: float, clients: int, *, set_based: bool
) -> float:
    """Runs/s through create → Pending → Running → Completed, no execution: Prefect's bulk
    calls, or with ``set_based`` the set-based creation and the fast path's claim, start and
    finish (50 runs a call)."""
    done = 0
    stop = time.time() + seconds

    async def loop() -> None:
        nonlocal done
        while time.time() < stop:
            if set_based:
                runs = [
                    {"scheduled_time": _api.iso(time.time()), "key": uuid.uuid4().hex}
                    for _ in range(50)
                ]
                made = await api._post(_BULK_JOBS, {"deployment_id": deployment, "runs": runs})
                ids = [str(i) for i in made["ids"]]
            else:
                body = [{"state": {"type": "SCHEDULED"}} for _ in range(50)]
                answer = await api._post(f"deployments/{deployment}/create_flow_run/bulk", body)
                ids = [str(r["flow_run_id"]) for r in answer["results"] if r.get("flow_run_id")]
            if not set_based:
                for state in ("PENDING", "RUNNING", "COMPLETED"):
                    await api.bulk_set_state(ids, {"type": state})
                done += len(ids)
                continue
            claim = await api.fast_claim(pool, time.time() + 60, len(ids), str(uuid.uuid4()))
            moves = [{"id": c["id"], "state_id": c["pending_state_id"]} for c in claim["claimed"]]
            started = await api.fast_start(moves, str(uuid.uuid4()))
            running = [{"id": i, "state_id": s} for i, s in started.items()]
            await api.fast_finish(running, [], str(uuid.uuid4()))
            done += len(running)

    started = time.time()
    await asyncio.gather(*(loop() for _ in range(clients)))
    return done / (time.time() - started)


async def wait_settled(
    platform: LocalPlatform,
    deployments: list[str],
    timeout: float,
    due_before: float | None = None,
) -> float:
    """Until no run of the deployments due before ``due_before`` (default now) is waiting or
    running, or ``timeout``; the seconds it took."""
    started = time.time()
    while time.time() < started + timeout:
        rows = await query(
            platform,
            "SELECT count(*) FROM flow_run WHERE deployment_id = ANY(:ids)"
            " AND state_type IN ('SCHEDULED', 'PENDING', 'RUNNING')"
            " AND expected_start_time < coalesce(to_timestamp(:before), now())",
            ids=deployments,
            before=due_before,
        )
        if rows[0][0] == 0:
            break
        await asyncio.sleep(1.0)
    return time.time() - started


async def query(platform: LocalPlatform, sql: str, **params: Any) -> list[Any]:
    """Rows of a query on the platform's database (Prefect's own records)."""
    engine = create_async_engine(platform.settings.asyncpg_url)
    try:
        async with engine.connect() as conn:
            bound = {k: [uuid.UUID(x) for x in v] if k == "ids" else v for k, v in params.items()}
            return list((await conn.execute(text(sql), bound)).all())
    finally:
        await engine.dispose()


async def deployment_updates(platform: LocalPlatform) -> int:
    """Rows of Prefect's ``deployment`` table updated so far (PostgreSQL's statistics)."""
    sql = "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'deployment'"
    return sum(int(row[0] or 0) for row in await query(platform, sql))


async def outcome(
    platform: LocalPlatform, deployments: list[str], since: float, until: float
) -> JSON:
    """Runs due in [since, until): start delays, rate, lost and doubled, from Prefect's tables."""
    rows = await query(
        platform,
        "SELECT fr.id, fr.state_type, extract(epoch FROM fr.expected_start_time),"
        " extract(epoch FROM fr.start_time), extract(epoch FROM fr.end_time), fr.run_count,"
        " (SELECT count(*) FROM flow_run_state s WHERE s.flow_run_id = fr.id"
        "  AND s.type = 'RUNNING')"
        " FROM flow_run fr WHERE fr.deployment_id = ANY(:ids)"
        " AND fr.expected_start_time >= to_timestamp(:since)"
        " AND fr.expected_start_time < to_timestamp(:until)",
        ids=deployments,
        since=since,
        until=until,
    )
    return summarise(rows, since)


def summarise(rows: list[Any], since: float) -> JSON:
    """The outcome of runs given as (id, state type, expected start, start, end, run_count,
    Running states) rows, epoch seconds; start offsets counted from ``since``."""
    delays = sorted(float(r[3]) - float(r[2]) for r in rows if r[3] is not None)
    starts = sorted(float(r[3]) for r in rows if r[3] is not None)
    completed = sum(1 for r in rows if r[1] == "COMPLETED")
    not_ended = sum(1 for r in rows if r[1] in ("SCHEDULED", "PENDING", "RUNNING"))
    twice = sum(1 for r in rows if (r[5] or 0) > 1 or (r[6] or 0) > 1)
    span = (starts[-1] - starts[0]) if len(starts) > 1 else 0.0
    return {
        "jobs": len(rows),
        "completed": completed,
        # Ended without completing (failed, crashed, cancelled); not yet ended is not lost.
        "lost": len(rows) - completed - not_ended,
        "not_ended": not_ended,
        "run_twice": twice,
        "rate_per_min": (len(starts) - 1) / span * 60 if span > 0 else None,
        "delay": percentiles(delays),
        "delays": delays,
        "starts": [s - since for s in starts],
    }


def percentiles(values: list[float]) -> JSON:
    """p50/p90/p99/max of sorted values (None when empty)."""
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None}

    def at(q: float) -> float:
        return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": values[-1]}
