"""``python -m bench.creation``: adding one-off jobs through the REST API, one by one and in bulk.

One tuned platform (two API processes, Redis) on a throwaway database, one task on the fast
pool; its jobs are due in a day, so none runs while they are counted. Side by side, in turns:

- **one by one**: ``POST /v1/tasks/{name}/schedule``, ``--clients`` callers at once, for
  ``--seconds``: each job a call, Prefect's ``create_flow_run`` (one orchestrated transaction);
- **bulk**: ``POST /v1/tasks/{name}/jobs/bulk`` with 1,000 jobs a call, the same callers: each
  call one transaction of the Prefect server that inserts the rows as its scheduler does.

Reported: jobs added a second, and CPU per job of the server tier (Prefect's API and services),
our API and PostgreSQL, from /proc. Asserts nothing: it reports.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench import _platform, _probe
from bench.__main__ import RESULTS, TOPOLOGIES, Probe, flush_redis, pointing_at, report_start
from taskscheduler.platform import LocalPlatform

JSON = dict[str, Any]
TOPOLOGY = "tuned-2"
BULK = 1000


async def add(
    http: httpx.AsyncClient, task: str, *, bulk: bool, seconds: float, clients: int
) -> tuple[int, float]:
    """Jobs added by ``clients`` callers for ``seconds``; (jobs, elapsed seconds)."""
    stop = time.monotonic() + seconds
    added = 0
    due = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)

    async def caller(n: int) -> None:
        nonlocal added
        calls = 0
        while time.monotonic() < stop:
            at = (due + dt.timedelta(seconds=n, milliseconds=calls)).isoformat()
            if bulk:
                jobs = [{"at": at, "parameters": {"i": k}} for k in range(BULK)]
                answer = await http.post(f"/v1/tasks/{task}/jobs/bulk", json={"jobs": jobs})
                answer.raise_for_status()
                added += len(answer.json()["job_ids"])
            else:
                answer = await http.post(f"/v1/tasks/{task}/schedule", json={"at": at})
                answer.raise_for_status()
                added += 1
            calls += 1

    started = time.monotonic()
    await asyncio.gather(*(caller(n) for n in range(clients)))
    return added, time.monotonic() - started


async def scenarios(p: LocalPlatform, args: argparse.Namespace) -> JSON:
    results: JSON = {}
    token = p.credentials.admin_token.get_secret_value()
    async with httpx.AsyncClient(
        base_url=p.service_api_url, headers={"Authorization": f"Bearer {token}"}, timeout=300
    ) as http:
        task = f"bench-create-{int(time.time())}"
        made = await http.post(
            "/v1/tasks",
            json={"name": task, "code": "def main(i=0):\n    return i\n", "pool": "fast"},
        )
        made.raise_for_status()
        for round_ in range(args.rounds):
            for name, bulk in (("one by one", False), ("bulk", True)):
                print(f"   {name}, round {round_ + 1}", flush=True)
                async with Probe(p) as probe:
                    jobs, elapsed = await add(
                        http, task, bulk=bulk, seconds=args.seconds, clients=args.clients
                    )
                cpu = probe.report(jobs)
                api_cpu = cpu.get("our api", {}).get("cpu_ms_per_job")
                results.setdefault(name, []).append(
                    {
                        "jobs": jobs,
                        "seconds": round(elapsed, 1),
                        "jobs_per_s": round(jobs / elapsed, 1),
                        "server_ms_per_job": cpu.get("server", {}).get("cpu_ms_per_job"),
                        "api_ms_per_job": api_cpu,
                        "postgres_ms_per_job": cpu.get("postgres", {}).get("cpu_ms_per_job"),
                        "machine_ms_per_job": cpu["machine"]["cpu_ms_per_job"],
                    }
                )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.creation", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    report = report_start(args)
    redis_db = TOPOLOGIES[TOPOLOGY]
    flush_redis(redis_db)
    with (
        tempfile.TemporaryDirectory(prefix="bench-create-") as work,
        _platform.platform(Path(work) / "state", topology=TOPOLOGY, redis_db=redis_db) as p,
        pointing_at(p),
    ):
        print("== creation: platform up", flush=True)
        report["results"] = asyncio.run(scenarios(p, args))
    flush_redis(redis_db)
    report["calibration_ms_end"] = _probe.calibrate()
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (args.out / f"creation-{stamp}.json").write_text(json.dumps(report, indent=1))
    for name, rounds in report["results"].items():
        for r in rounds:
            print(
                f"{name:<11} {r['jobs']:>7} jobs {r['jobs_per_s']:>8,.1f}/s  server"
                f" {r['server_ms_per_job']} ms/job, api {r['api_ms_per_job']}, postgres"
                f" {r['postgres_ms_per_job']}, machine {r['machine_ms_per_job']}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
