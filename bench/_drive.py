"""Drive the platform through the Prefect API and read the outcome from Prefect's tables."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from taskscheduler import AsyncTaskScheduler, schedules
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
    api: _api.Api,
    pool: str,
    count: int,
    interval: int,
    hits: str,
    spread: bool,
    lead: float,
) -> tuple[list[str], dt.datetime]:
    """``count`` deployments every ``interval`` s, together or spread evenly; their ids and
    their first tick, ``lead`` s after the last of them is expected to exist.

    Each has the schedule ``tasks create --every … --start …`` gives (an RRULE whose DTSTART is
    the start), so none fires while the others are still being created: the first ticks are
    set from the rate at which a pilot of 200 was created (those get their schedules last).
    Created directly with the API (one call each, 8 at a time): the SDK's per-task block and
    schedule calls would make 10,000 tasks take longer than the benchmark itself. They share one
    code version, which the fast lane fetches once.
    """
    ts = AsyncTaskScheduler()
    try:
        seed = await ts.create(
            {"name": f"bench-seed-{uuid.uuid4().hex[:6]}", "code": job_code(hits), "pool": pool}
        )
    finally:
        await ts.aclose()
    base = await api.http.get(f"deployments/{seed.deployment_id}")
    template: JSON = base.json()
    semaphore = asyncio.Semaphore(8)
    ids: dict[int, str] = {}

    async def call(path: str, body: Any, tries: int = 3) -> Any:
        """One POST, repeated on failure only when ``tries`` > 1 (an idempotent call)."""
        async with semaphore:
            for attempt in range(tries):
                try:
                    return await api._post(path, body)
                except httpx.HTTPError:
                    if attempt == tries - 1:
                        raise
                    await asyncio.sleep(1)

    def schedule(n: int, first: dt.datetime) -> JSON:
        return {"schedule": tick_schedule(n, count, interval, first, spread), "active": True}

    async def create(n: int, first: dt.datetime | None) -> None:
        body = {
            "name": f"{template['name']}-r{n}",
            "flow_id": template["flow_id"],
            "entrypoint": template["entrypoint"],
            "parameters": template["parameters"],
            "work_pool_name": pool,
            "pull_steps": template["pull_steps"],
            "enforce_parameter_schema": False,
            "schedules": [schedule(n, first)] if first else [],
        }
        # Creating a deployment is an upsert by name: repeating it is safe.
        ids[n] = str((await call("deployments/", body))["id"])

    pilot = min(count, 200)
    started = time.time()
    await asyncio.gather(*(create(n, None) for n in range(pilot)))
    per_task = (time.time() - started) / pilot
    # The rest, then the pilot's schedules: (count - pilot) + pilot calls of about the same cost.
    first = dt.datetime.fromtimestamp(round(time.time() + count * per_task * 1.1 + lead), dt.UTC)
    await asyncio.gather(*(create(n, first) for n in range(pilot, count)))
    await asyncio.gather(
        *(call(f"deployments/{ids[n]}/schedules", [schedule(n, first)], 1) for n in range(pilot))
    )
    return [ids[n] for n in range(count)], first


def tick_schedule(n: int, count: int, interval: int, first: dt.datetime, spread: bool) -> JSON:
    """The Prefect schedule of recurring task ``n`` of ``count``: every ``interval`` s from
    ``first``, or from ``first`` plus its share of the interval when ``spread``."""
    offset = dt.timedelta(seconds=interval * n // count) if spread else dt.timedelta(0)
    plan = schedules.plan(
        "every",
        f"{interval}s",
        timezone="UTC",
        start=first + offset,
        end=None,
        now=dt.datetime.now(dt.UTC),
    )
    return {"rrule": plan.rrule, "timezone": plan.timezone}


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
