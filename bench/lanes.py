"""``python -m bench.lanes``: the lanes that run other people's code, side by side, in one run.

One tuned platform (two API processes, Redis, the Docker pool when Docker works), on a
throwaway database; one after another on it:

- **sandbox**: ``--rate`` jobs a minute for ``--minutes`` (the target load: 120 for 3);
- **sandbox ramp**: ``--ramp`` rates for one minute each, highest last, stopping after the
  first whose p99 start delay exceeds 1 s: the most jobs a minute that still meet it;
- **sandbox burst**: ``--burst`` jobs due at one instant (a warm sandbox is started ahead for
  each run held, up to the lane's 64);
- **process** and **docker**: ``--other-rate`` jobs a minute for ``--other-minutes``, a rate
  they can bear (each of their jobs is a fresh interpreter importing Prefect, in a container
  for docker), so their start delay and CPU per job are measured, not their queue.

Start delays are Prefect's records (``start_time - expected_start_time``). CPU per job is the
lane worker's process tree (its sandboxes or job processes, as far as their exits reach the
worker's own accounting) and the whole machine's busy time over the scenario, less what the
idle platform uses in as long (``--idle`` seconds measured first): only the machine sees the
Docker engine, the containers and every process a lane starts. Asserts nothing: it reports.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import _platform, _probe
from bench.__main__ import (
    RESULTS,
    TOPOLOGIES,
    flush_redis,
    pointing_at,
    report_start,
    run_burst,
    run_steady,
)
from taskscheduler.platform import LocalPlatform

JSON = dict[str, Any]
TOPOLOGY = "tuned-2"
TASKS = 4
TARGET_P99 = 1.0
LANE_TIER = {"sandbox": "sandbox worker", "process": "process worker", "docker": "docker worker"}


async def idle_busy_per_second(seconds: float) -> float:
    """The machine's busy CPU seconds per second while the platform waits with no jobs."""
    before, started = _probe.host_busy_seconds(), time.monotonic()
    await asyncio.sleep(seconds)
    return (_probe.host_busy_seconds() - before) / (time.monotonic() - started)


def net_machine_ms(result: JSON, idle: float) -> float | None:
    """The machine's CPU per job of a scenario, less the idle platform's over its window."""
    machine = result["cpu"]["machine"]
    if not result["jobs"]:
        return None
    jobs = int(result["jobs"])
    return 1000 * (float(machine["cpu_s"]) - idle * float(machine["seconds"])) / jobs


async def scenarios(p: LocalPlatform, args: argparse.Namespace, hits: str) -> JSON:
    results: JSON = {}
    print(f"   idle: {args.idle:g} s", flush=True)
    idle = await idle_busy_per_second(args.idle)

    async def steady(name: str, pool: str, rate: float, minutes: float) -> JSON:
        print(f"   {name}: {rate:g}/min x {minutes:g} min on {pool}", flush=True)
        result = await run_steady(
            p, pool, rate, minutes, TASKS, None if pool == "docker" else hits, bulk=True
        )
        result["pool"] = pool
        result["idle_cpu_per_s"] = round(idle, 3)
        result["machine_net_ms_per_job"] = net_machine_ms(result, idle)
        results[name] = result
        return result

    await steady("sandbox", "sandbox", args.rate, args.minutes)
    for rate in args.ramp:
        delay = (await steady(f"sandbox@{rate:g}", "sandbox", rate, 1.0))["delay"]
        if delay["p99"] is None or delay["p99"] > TARGET_P99:
            break
    print(f"   sandbox burst: {args.burst} at one instant", flush=True)
    burst = await run_burst(p, "sandbox", args.burst, TASKS, hits, bulk=True)
    burst.update(pool="sandbox", offered_per_min=None, idle_cpu_per_s=round(idle, 3))
    burst["machine_net_ms_per_job"] = net_machine_ms(burst, idle)
    results["sandbox burst"] = burst
    await steady("process", "process", args.other_rate, args.other_minutes)
    if p.ensure_docker():
        await steady("docker", "docker", args.other_rate, args.other_minutes)
    else:
        print("   docker: no usable Docker engine here; not measured", flush=True)
    return results


def best_rate(results: JSON) -> float | None:
    """The highest offered sandbox rate whose jobs all started with p99 ≤ 1 s, none lost."""
    met = [
        r["offered_per_min"]
        for name, r in results.items()
        if name.startswith("sandbox")
        and r["offered_per_min"] is not None
        and r["delay"]["p99"] is not None
        and r["delay"]["p99"] <= TARGET_P99
        and r["lost"] == 0
        and r["not_ended"] == 0
    ]
    return max(met) if met else None


def _offered(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:g}"  # a burst has no rate


def table(results: JSON) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:,.0f}"

    lines = [
        f"{'scenario':<16}{'offered':>8}{'jobs':>6}{'started/min':>12}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}{'lost':>5}{'twice':>6}{'lane ms/job':>12}{'machine net ms/job':>19}"
    ]
    for name, r in results.items():
        cpu = r["cpu"]
        lane = cpu.get(LANE_TIER[r["pool"]], {}).get("cpu_ms_per_job")
        rate = r["rate_per_min"]
        lines.append(
            f"{name:<16}{_offered(r['offered_per_min']):>8}{r['jobs']:>6}"
            f"{'-' if rate is None else f'{rate:,.0f}':>12}"
            f"{ms(r['delay']['p50']):>9}{ms(r['delay']['p99']):>9}{ms(r['delay']['max']):>9}"
            f"{r['lost']:>5}{r['run_twice']:>6}{'-' if lane is None else f'{lane:,.0f}':>12}"
            f"{r['machine_net_ms_per_job'] or 0:>19,.0f}"
        )
    best = best_rate(results)
    lines.append(
        f"most sandbox jobs/min with p99 <= {TARGET_P99:g} s (of the rates tried): "
        + (f"{best:g}" if best is not None else "none")
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lanes", description=__doc__)
    parser.add_argument("--rate", type=float, default=120.0)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--ramp", default="240,480,720,960,1440")
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--other-rate", type=float, default=10.0)
    parser.add_argument("--other-minutes", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.ramp = [float(r) for r in args.ramp.split(",") if r]
    report = report_start(args)
    redis_db = TOPOLOGIES[TOPOLOGY]
    flush_redis(redis_db)
    with (
        tempfile.TemporaryDirectory(prefix="bench-lanes-") as work,
        _platform.jobs_dir() as jobs,
        _platform.platform(
            Path(work) / "state", topology=TOPOLOGY, redis_db=redis_db, writable=jobs
        ) as p,
        pointing_at(p),
    ):
        print("== lanes: platform up", flush=True)
        report["results"] = asyncio.run(scenarios(p, args, str(jobs / "runs.hits")))
    flush_redis(redis_db)
    report["calibration_ms_end"] = _probe.calibrate()
    report["best_sandbox_rate"] = best_rate(report["results"])
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (args.out / f"lanes-{stamp}.json").write_text(json.dumps(report, indent=1))
    slim = json.loads(json.dumps(report))
    for r in slim["results"].values():
        r.pop("delays", None)
        r.pop("starts", None)
    (args.out / "lanes-latest.json").write_text(json.dumps(slim, indent=1))
    text = table(report["results"])
    (args.out / "lanes-latest.txt").write_text(text + "\n")
    print(text)
    print(
        f"CPU calibration {report['calibration_ms_start']} → {report['calibration_ms_end']} ms",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
