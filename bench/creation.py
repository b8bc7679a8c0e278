"""``python -m bench.creation``: creating jobs and tasks through the REST API, one by one and in
bulk.

One tuned platform (two API processes, Redis) on a throwaway database for each of
``--configs`` (``tuned-2``; ``tuned-2@NAME=VALUE`` as ``python -m bench`` takes them, one after
the other in one invocation). Side by side, in turns, each for ``--seconds`` with ``--clients``
callers at once:

- **jobs one by one**: ``POST /v1/tasks/{name}/schedule`` on one task of the fast pool, its
  jobs due in a day (none runs while they are counted): each job a call, Prefect's
  ``create_flow_run`` (one orchestrated transaction);
- **jobs bulk**: ``POST /v1/tasks/{name}/jobs/bulk``, 1,000 jobs a call: each call one
  transaction of the Prefect server that inserts the rows as its scheduler does;
- **tasks one by one**: ``POST /v1/tasks``, a task every 5 minutes on the fast pool (as the
  recurring scenario's) from a day on (none of their jobs runs while they are counted);
- **tasks bulk**: ``POST /v1/tasks/bulk``, ``--tasks-per-call`` tasks a call: their code
  versions, deployments and first runs in one transaction of the Prefect server.

Reported: items created a second, and CPU per item of the server tier (Prefect's API and
services), our API and PostgreSQL, from /proc. Asserts nothing: it reports.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from bench import _platform, _probe
from bench.__main__ import (
    RESULTS,
    TOPOLOGIES,
    Probe,
    flush_redis,
    pointing_at,
    report_start,
    split_config,
)
from taskscheduler.platform import LocalPlatform

JSON = dict[str, Any]
BULK = 1000


# One call of a caller: (caller number, its call number) -> items created.
Call = Callable[[int, int], Awaitable[int]]
CODE = "def main(i=0):\n    return i\n"


async def add(call: Call, *, seconds: float, clients: int) -> tuple[int, float]:
    """Items created by ``clients`` callers for ``seconds``; (items, elapsed seconds)."""
    stop = time.monotonic() + seconds
    added = 0

    async def caller(n: int) -> None:
        nonlocal added
        calls = 0
        while time.monotonic() < stop:
            added += await call(n, calls)
            calls += 1

    started = time.monotonic()
    await asyncio.gather(*(caller(n) for n in range(clients)))
    return added, time.monotonic() - started


def ways(http: httpx.AsyncClient, task: str, stamp: str, per_call: int) -> dict[str, Call]:
    """The four ways to create, each as one call of a caller."""
    due = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)

    def at(n: int, calls: int) -> str:
        return (due + dt.timedelta(seconds=n, milliseconds=calls)).isoformat()

    numbers = itertools.count()

    def new_task() -> JSON:
        name = f"bench-new-{stamp}-{next(numbers)}"
        return {"name": name, "code": CODE, "every": "5m", "pool": "fast", "start": due.isoformat()}

    async def post(path: str, body: JSON) -> JSON:
        answer = await http.post(path, json=body)
        answer.raise_for_status()
        made: JSON = answer.json()
        return made

    async def one_job(n: int, calls: int) -> int:
        await post(f"/v1/tasks/{task}/schedule", {"at": at(n, calls)})
        return 1

    async def bulk_jobs(n: int, calls: int) -> int:
        jobs = [{"at": at(n, calls), "parameters": {"i": k}} for k in range(BULK)]
        return len((await post(f"/v1/tasks/{task}/jobs/bulk", {"jobs": jobs}))["job_ids"])

    async def one_task(n: int, calls: int) -> int:
        await post("/v1/tasks", new_task())
        return 1

    async def bulk_tasks(n: int, calls: int) -> int:
        tasks = [new_task() for _ in range(per_call)]
        return len((await post("/v1/tasks/bulk", {"tasks": tasks}))["items"])

    return {
        "jobs one by one": one_job,
        "jobs bulk": bulk_jobs,
        "tasks one by one": one_task,
        "tasks bulk": bulk_tasks,
    }


async def scenarios(p: LocalPlatform, args: argparse.Namespace) -> JSON:
    results: JSON = {}
    token = p.credentials.admin_token.get_secret_value()
    async with httpx.AsyncClient(
        base_url=p.service_api_url, headers={"Authorization": f"Bearer {token}"}, timeout=300
    ) as http:
        stamp = str(int(time.time()))
        task = f"bench-create-{stamp}"
        made = await http.post("/v1/tasks", json={"name": task, "code": CODE, "pool": "fast"})
        made.raise_for_status()
        chosen = ways(http, task, stamp, args.tasks_per_call)
        wanted = [w for w in chosen if w.split()[0] in args.what]
        for round_ in range(args.rounds):
            for name in wanted:
                print(f"   {name}, round {round_ + 1}", flush=True)
                async with Probe(p) as probe:
                    count, elapsed = await add(
                        chosen[name], seconds=args.seconds, clients=args.clients
                    )
                cpu = probe.report(count)
                api_cpu = cpu.get("our api", {}).get("cpu_ms_per_job")
                results.setdefault(name, []).append(
                    {
                        "items": count,
                        "seconds": round(elapsed, 1),
                        "per_s": round(count / elapsed, 1),
                        "server_ms_per_item": cpu.get("server", {}).get("cpu_ms_per_job"),
                        "api_ms_per_item": api_cpu,
                        "postgres_ms_per_item": cpu.get("postgres", {}).get("cpu_ms_per_job"),
                        "machine_ms_per_item": cpu["machine"]["cpu_ms_per_job"],
                    }
                )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.creation", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tasks-per-call", type=int, default=250)
    parser.add_argument("--what", nargs="+", choices=["jobs", "tasks"], default=["jobs", "tasks"])
    parser.add_argument("--configs", default="tuned-2", help="comma-separated, as python -m bench")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    parsed = {name: split_config(name) for name in args.configs.split(",") if name}
    if any(topology == "stock" for topology, _ in parsed.values()):
        raise SystemExit("bench.creation: the stock platform has no bulk routes to measure")
    report = report_start(args)
    report["results"] = {}
    for name, (topology, own) in parsed.items():
        redis_db = TOPOLOGIES[topology]
        flush_redis(redis_db)
        with (
            tempfile.TemporaryDirectory(prefix="bench-create-") as work,
            _platform.platform(
                Path(work) / "state", topology=topology, redis_db=redis_db, extra=own
            ) as p,
            pointing_at(p),
        ):
            print(f"== creation, {name}: platform up", flush=True)
            report["results"][name] = asyncio.run(scenarios(p, args))
        flush_redis(redis_db)
    report["calibration_ms_end"] = _probe.calibrate()
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (args.out / f"creation-{stamp}.json").write_text(json.dumps(report, indent=1))
    for config, results in report["results"].items():
        for name, rounds in results.items():
            for r in rounds:
                print(
                    f"{config:<24} {name:<16} {r['items']:>7} {r['per_s']:>8,.1f}/s  server"
                    f" {r['server_ms_per_item']} ms each, api {r['api_ms_per_item']}, postgres"
                    f" {r['postgres_ms_per_item']}, machine {r['machine_ms_per_item']}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
