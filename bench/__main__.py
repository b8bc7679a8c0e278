"""``make bench``: drive the real platform on throwaway databases and print what it achieved.

    python -m bench                      # the short version (a few minutes)
    python -m bench --profile full       # the targets of docs/performance.md (under 30 min)
    python -m bench --rate 3000 --minutes 2 --skip recurring,api

Configurations, each on its own throwaway database, port and Redis db index:

- **stock**: Prefect's defaults, the ``process`` lane (a worker polling every 10 s, a new
  interpreter per run); the baseline, at a rate it can bear.
- **tuned-2**: ``taskscheduler.tuning`` with two API processes, services apart, Redis; the
  ``fast`` lane on the set-based path (``_prefect.server.fastpath``).
- **tuned-2@TASKS_FAST_SET_BASED=false**: the same fast lane on Prefect's bulk REST
  orchestration, the lane before the set-based path; measured beside it in one invocation.
- **tuned-2@BENCH_ZOMBIE_AUTOMATION=true**: with Prefect's zombie automation added, as the
  platform had it before the watchdog crashed silent jobs itself (``_platform``).
- **tuned-2@BENCH_NAGLE=on**: with Nagle's algorithm left on the Prefect API's connections, as
  they were before the API processes turned it off (``_platform``).
- **tuned-2@BENCH_PENDULUM=on@BENCH_EVENT_READS=per-run**: with Prefect's pendulum timestamps
  bound as they are, and the fast lane's events reading their related resources run by run, as
  before ``_prefect.server.timestamps`` and ``_prefect.server.related`` (``_platform``).
- **tuned-2@BENCH_CSRF=prefect@BENCH_DISTRIBUTOR=prefect**: with Prefect's CSRF middleware, a
  database read on every state-changing call, and its events distributor reading one event a
  round-trip in each API process and running in the services process too, as before
  ``_prefect.server.csrf`` and ``_prefect.server.distributor`` (``_platform``).
- **tuned-2@BENCH_COMMIT=REV**: every process of the platform running the package as it was
  at commit REV, for a change no switch turns off (``_platform``).
- **tuned-1**: the same with one API process: the API throughput comparison, and the fast lane
  too with ``--fast-on tuned-1,tuned-2``.

Scenarios: (a) ``steady`` — R one-off jobs a minute for D minutes over K tasks, each created
``lead`` s before it is due; (b) ``recurring`` — N interval tasks fired by Prefect's scheduler;
(c) ``burst`` — B jobs due in the same second; ``api`` — runs/s through create → Pending →
Running → Completed with the bulk endpoints and no execution. Start delays are Prefect's own
records (``flow_run.start_time - expected_start_time``); CPU and peak memory come from /proc.
Benchmarks live apart from the tests and assert nothing: they report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform as host
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench import _drive, _platform, _probe
from taskscheduler._prefect import rest as _api
from taskscheduler.platform import (
    API,
    DOCKER_WORKER,
    FAST_WORKER,
    SANDBOX_WORKER,
    SERVER,
    SERVICES,
    WORKER,
    LocalPlatform,
)
from taskscheduler.reliability import ReliabilitySettings

RESULTS = Path(__file__).parent / "results"
JSON = dict[str, Any]

# The stock lane's rates: each of its jobs costs about 10 CPU-seconds in the worker's process
# tree here (a new interpreter, Prefect imported, the engine's own calls), so two cores bear
# about a dozen a minute; more only measures a growing queue.
PROFILES: dict[str, JSON] = {
    "short": {
        "rate": 600,
        "minutes": 1.0,
        "slow_rate": 600,
        "slow_minutes": 0.0,
        "tasks": 4,
        "stock_rate": 10,
        "stock_minutes": 1.0,
        "burst": 200,
        "stock_burst": 10,
        "recurring": 300,
        "interval": 60,
        "spread": False,
        "observe": 1.5,
        "api_seconds": 15,
        "api_compare": False,
    },
    "full": {
        "rate": 2000,
        "minutes": 3.0,
        "slow_rate": 600,
        "slow_minutes": 1.0,
        "tasks": 4,
        "stock_rate": 10,
        "stock_minutes": 2.0,
        "burst": 1000,
        "stock_burst": 20,
        "recurring": 10000,
        "interval": 600,
        "spread": True,
        "observe": 2.0,
        "api_seconds": 30,
        "api_compare": True,
    },
}
# The fast lane on Prefect's bulk REST orchestration, beside the set-based default.
REST_PATH = "tuned-2@TASKS_FAST_SET_BASED=false"
# The platforms the bench starts, with the Redis database each uses.
TOPOLOGIES = {"stock": 0, "tuned-1": 11, "tuned-2": 12}
LEAD = 8.0  # seconds between creating a run and its time: more than the fast lookahead (5 s)
DRAIN_S = 600.0  # at most this long for the recurring scenario's window to end


@contextlib.contextmanager
def pointing_at(platform: LocalPlatform) -> Iterator[None]:
    """This process's SDK and Prefect client talk to ``platform``."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    from taskscheduler.settings import get_settings

    saved = dict(os.environ)
    os.environ.update({k: v for k, v in platform.env().items() if k.startswith("TASKS_")})
    os.environ["PREFECT_API_URL"] = platform.api_url
    os.environ["PREFECT_API_AUTH_STRING"] = platform.prefect_auth_string
    get_settings.cache_clear()
    try:
        with temporary_settings(
            updates={
                PREFECT_API_URL: platform.api_url,
                PREFECT_API_AUTH_STRING: platform.prefect_auth_string,
            }
        ):
            yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


class Probe:
    """Samples the platform's tiers every second while a scenario runs."""

    def __init__(self, platform: LocalPlatform) -> None:
        self.platform = platform
        self.backends: set[int] = set()
        roots = {
            "server": lambda: _probe.descendants(self._pids(SERVER, SERVICES)),
            # The part of "server" in the services process (tuned topologies only), to tell the
            # API's share from the scheduler's, the event persister's and the triggers'.
            "services": lambda: _probe.descendants(self._pids(SERVICES)),
            "fast worker": lambda: _probe.descendants(self._pids(FAST_WORKER)),
            "process worker": lambda: _probe.descendants(self._pids(WORKER)),
            "sandbox worker": lambda: _probe.descendants(self._pids(SANDBOX_WORKER)),
            "docker worker": lambda: _probe.descendants(self._pids(DOCKER_WORKER)),
            "our api": lambda: _probe.descendants(self._pids(API)),
        }
        self.tiers = [_probe.Tier(name, pids) for name, pids in roots.items()]
        self.tiers.append(_probe.Tier("postgres", lambda: set(self.backends), tree=False))
        self.task: asyncio.Task[None] | None = None
        self.db_bytes = [0, 0]
        self.host = [0.0, 0.0]  # the whole machine's busy CPU seconds, at the start and end
        self.window = [0.0, 0.0]  # when the probe began and ended (monotonic)

    def _pids(self, *services: str) -> list[int]:
        return [p for s in services if (p := self.platform._read_pid(s)) is not None]

    async def _backends(self) -> None:
        engine = create_async_engine(
            self.platform.settings.asyncpg_url.rsplit("/", 1)[0] + "/postgres"
        )
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(
                    text("SELECT pid FROM pg_stat_activity WHERE datname = :d"),
                    {"d": self.platform.settings.asyncpg_url.rsplit("/", 1)[1]},
                )
                self.backends = {int(r[0]) for r in rows}
                size = await conn.execute(
                    text("SELECT pg_database_size(:d)"),
                    {"d": self.platform.settings.asyncpg_url.rsplit("/", 1)[1]},
                )
                self.db_bytes[1] = int(size.scalar_one())
        finally:
            await engine.dispose()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            with contextlib.suppress(Exception):
                await self._backends()
            for tier in self.tiers:
                tier.sample()

    async def __aenter__(self) -> Probe:
        await self._backends()
        self.db_bytes[0] = self.db_bytes[1]
        for tier in self.tiers:
            tier.begin()
        self.host[0] = _probe.host_busy_seconds()
        self.window[0] = time.monotonic()
        self.task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self._backends()
        for tier in self.tiers:
            tier.sample()
        self.host[1] = _probe.host_busy_seconds()
        self.window[1] = time.monotonic()

    def report(self, jobs: int) -> JSON:
        grown = self.db_bytes[1] - self.db_bytes[0]
        busy = self.host[1] - self.host[0]
        return {
            "machine": {
                "seconds": round(self.window[1] - self.window[0], 1),
                "cpu_s": round(busy, 2),
                "cpu_ms_per_job": round(1000 * busy / jobs, 2) if jobs else None,
            },
            "database": {
                "grown_mb": round(grown / 2**20, 1),
                "bytes_per_job": round(grown / jobs) if jobs else None,
            },
        } | {
            t.name: {
                "cpu_s": round(t.cpu, 2),
                "cpu_ms_per_job": round(1000 * t.cpu / jobs, 2) if jobs else None,
                "peak_rss_mb": round(t.peak_rss / 2**20, 1),
            }
            for t in self.tiers
            if t.peak_rss
        }


def report_start(args: argparse.Namespace) -> JSON:
    """The start of a report: when, with what arguments, and how fast the machine was."""
    return {
        "started": dt.datetime.now(dt.UTC).isoformat(),
        "parameters": {k: v for k, v in vars(args).items() if k != "out"},
        "calibration_ms_start": _probe.calibrate(),
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


async def run_steady(
    p: LocalPlatform,
    pool: str,
    rate: float,
    minutes: float,
    tasks: int,
    hits: str | None,
    *,
    bulk: bool,
) -> JSON:
    deployments = await _drive.create_tasks(p, pool, tasks, hits)
    api = _drive.client(p)
    load = loadavg()
    try:
        async with Probe(p) as probe:
            _, since, until = await _drive.steady(
                api, deployments, rate, minutes * 60, LEAD, bulk=bulk
            )
            # Up to the last run's time: ``steady`` returns ``LEAD`` s before it, and a lane that
            # keeps up has nothing due left to wait for then (49 runs of 600 were counted as not
            # ended, 2026-12-02 evening).
            await _drive.wait_settled(
                p, deployments, timeout=max(120.0, minutes * 60), due_before=until + 1
            )
        result = await _drive.outcome(p, deployments, since - 1, until + 1)
    finally:
        await api.close()
    result.update(
        offered_per_min=rate,
        cpu=probe.report(result["jobs"]),
        load_before=load,
        load_after=loadavg(),
    )
    return result


async def run_burst(
    p: LocalPlatform, pool: str, count: int, tasks: int, hits: str, *, bulk: bool
) -> JSON:
    deployments = await _drive.create_tasks(p, pool, tasks, hits)
    api = _drive.client(p)
    load = loadavg()
    try:
        async with Probe(p) as probe:
            at = await _drive.burst(api, deployments, count, LEAD + count / 200, bulk=bulk)
            await asyncio.sleep(max(0.0, at - time.time()))
            await _drive.wait_settled(p, deployments, timeout=300.0)
        result = await _drive.outcome(p, deployments, at - 1, at + 1)
    finally:
        await api.close()
    result.update(cpu=probe.report(result["jobs"]), load_before=load, load_after=loadavg())
    return result


async def worker_polls(p: LocalPlatform, api: _api.Api, pool: str, polls: int = 8) -> JSON:
    """What a Prefect worker's poll of ``pool`` costs (``get_scheduled_flow_runs``, which marks
    every deployment of the pool ready), one a second: deployment rows updated and CPU a poll,
    the CPU over that of as long a window without polls (the scheduler's loop and the fast
    lane's idle claims run in both). Measured before the recurring tasks' first tick, after one
    poll that makes every deployment ready (its ready events are a one-off cost). Prefect runs
    one marking of a pool at a time and drops the polls' markings that come meanwhile."""
    await api._post(f"work_pools/{pool}/get_scheduled_flow_runs", {})
    await asyncio.sleep(3.0)
    window = polls + 2.0  # Prefect marks in a background task after the answer
    async with Probe(p) as idle:
        await asyncio.sleep(window)
    updated = await _drive.deployment_updates(p)
    async with Probe(p) as probe:
        for _ in range(polls):
            await api._post(f"work_pools/{pool}/get_scheduled_flow_runs", {})
            await asyncio.sleep(1.0)
        await asyncio.sleep(window - polls)
    await asyncio.sleep(1.0)  # PostgreSQL publishes its statistics at most once a second
    busy, quiet = probe.report(1), idle.report(1)

    def per_poll(tier: str) -> float | None:
        spent, base = (r.get(tier, {}).get("cpu_ms_per_job") for r in (busy, quiet))
        return None if spent is None or base is None else round((spent - base) / polls, 1)

    return {
        "polls": polls,
        "deployment_rows_updated_per_poll": round(
            (await _drive.deployment_updates(p) - updated) / polls
        ),
        "server_ms_per_poll": per_poll("server"),
        "postgres_ms_per_poll": per_poll("postgres"),
        "idle_server_ms_per_s": round(
            (quiet.get("server", {}).get("cpu_ms_per_job") or 0) / window
        ),
    }


async def run_recurring(
    p: LocalPlatform,
    pool: str,
    count: int,
    interval: int,
    spread: bool,
    observe: float,
    hits: str,
) -> JSON:
    api = _drive.client(p)
    load = loadavg()
    try:
        started = time.time()
        deployments, first = await _drive.recurring(pool, count, interval, hits, spread, lead=45.0)
        created = time.time() - started
        # Observe from the first tick, or from now if creating the tasks took longer.
        to_first_tick = first.timestamp() - time.time()
        if to_first_tick < 5:
            print(
                f"   creating the tasks left {to_first_tick:.0f} s to their first tick", flush=True
            )
        polls = await worker_polls(p, api, pool) if to_first_tick > 30 else None
        since = max(time.time() + 5, first.timestamp())
        await asyncio.sleep(max(0.0, since - time.time()))
        async with Probe(p) as probe:
            await asyncio.sleep(observe * 60)
        until = time.time()
        # The window's ticks are drained (bounded) while later ticks keep coming; whatever has
        # not ended by then is reported as not ended, not as lost.
        drain = await _drive.wait_settled(p, deployments, timeout=DRAIN_S, due_before=until - 5)
        result = await _drive.outcome(p, deployments, since, until - 5)
    finally:
        await api.close()
    expected = int(count * ((until - 5 - since) / interval)) if spread else None
    result.update(
        tasks=count,
        interval_s=interval,
        spread=spread,
        create_s=round(created, 1),
        first_tick_after_create_s=round(to_first_tick, 1),
        prefect_worker_poll=polls,
        drain_s=round(drain, 1),
        expected_jobs=expected,
        cpu=probe.report(result["jobs"]),
        load_before=load,
        load_after=loadavg(),
    )
    return result


async def run_api(p: LocalPlatform, seconds: float, hits: str, *, set_based: bool) -> JSON:
    deployment = (await _drive.create_tasks(p, "process", 1, hits))[0]
    # Park the process pool's worker out of the way: these runs are never executed.
    p.stop(WORKER)
    api = _drive.client(p)
    load = loadavg()
    try:
        async with Probe(p) as probe:
            rate = await _drive.api_throughput(
                api, deployment, "process", seconds, clients=4, set_based=set_based
            )
    finally:
        await api.close()
    return {
        "runs_per_s": round(rate, 1),
        "runs_per_min": round(rate * 60),
        "cpu": probe.report(int(rate * seconds)),
        "load_before": load,
        "load_after": loadavg(),
    }


def flush_redis(db: int) -> None:
    import redis

    with contextlib.suppress(Exception):
        redis.Redis(host="127.0.0.1", port=6379, db=db).flushdb()


def platform_env(args: argparse.Namespace) -> dict[str, str]:
    """The platform settings the command line overrides (``--env NAME=VALUE``)."""
    return dict(item.split("=", 1) for item in args.env)


def split_config(name: str) -> tuple[str, dict[str, str]]:
    """``tuned-2@NAME=VALUE@...``: the topology, and the settings only this configuration changes.

    Two variants of one topology in one invocation are measured side by side, minutes apart
    on the same machine, which separate invocations on a drifting VM are not.
    """
    topology, *pairs = name.split("@")
    if topology not in TOPOLOGIES or (pairs and topology == "stock"):
        raise SystemExit(f"bench: unknown configuration {name!r} (stock, tuned-1, tuned-2[@N=V])")
    settings = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
    if len(settings) != len(pairs):
        raise SystemExit(f"bench: {name!r}: settings are written @NAME=VALUE")
    return topology, settings


def configuration(name: str, args: argparse.Namespace, work: Path) -> JSON:
    """Start one platform, run its scenarios, stop it (the platform's own calls are sync)."""
    topology, own = split_config(name)
    redis_db = TOPOLOGIES[topology]
    if topology != "stock":
        flush_redis(redis_db)
    state = work / name.replace("@", "_")
    print(f"== {name}: starting a platform", flush=True)
    try:
        with (
            _platform.jobs_dir() as jobs,
            _platform.platform(
                state,
                topology=topology,
                redis_db=redis_db,
                extra={**platform_env(args), **own} if topology != "stock" else None,
                writable=jobs,
            ) as p,
            pointing_at(p),
        ):
            return asyncio.run(scenarios(topology, args, p, str(jobs / "runs.hits")))
    finally:
        if topology != "stock":
            flush_redis(redis_db)


async def scenarios(topology: str, args: argparse.Namespace, p: LocalPlatform, hits: str) -> JSON:
    """The scenarios of one configuration."""
    results: JSON = {}
    # The fast lane's orchestration and the jobs' creation (and the API scenario's): set-based
    # unless turned off; stock Prefect creates them through its own REST path.
    set_based = p.env().get("TASKS_FAST_SET_BASED", "true").lower() not in ("false", "0", "no")
    skip = set(args.skip)
    if p.env().get(_platform.ZOMBIE_AUTOMATION, "").lower() == "true":
        await _platform.add_zombie_automation(ReliabilitySettings().zombie_after.total_seconds())
    if topology == "stock":
        if "steady" not in skip:
            print(f"   steady {args.stock_rate}/min x {args.stock_minutes} min", flush=True)
            results["steady"] = await run_steady(
                p, "process", args.stock_rate, args.stock_minutes, args.tasks, hits, bulk=False
            )
        if "burst" not in skip:
            print(f"   burst {args.stock_burst}", flush=True)
            results["burst"] = await run_burst(p, "process", args.stock_burst, 1, hits, bulk=False)
    elif topology in args.fast_on:
        if "steady" not in skip:
            if args.slow_minutes:
                print(f"   steady {args.slow_rate}/min x {args.slow_minutes} min", flush=True)
                results["steady-slow"] = await run_steady(
                    p, "fast", args.slow_rate, args.slow_minutes, args.tasks, hits, bulk=set_based
                )
            print(f"   steady {args.rate}/min x {args.minutes} min", flush=True)
            results["steady"] = await run_steady(
                p, "fast", args.rate, args.minutes, args.tasks, hits, bulk=set_based
            )
        if "burst" not in skip:
            print(f"   burst {args.burst}", flush=True)
            results["burst"] = await run_burst(
                p, "fast", args.burst, args.tasks, hits, bulk=set_based
            )
        # Before the recurring tasks, which keep the server busy for as long as it lives.
        if "api" not in skip:
            print(f"   api {args.api_seconds}s", flush=True)
            results["api"] = await run_api(p, args.api_seconds, hits, set_based=set_based)
        if "recurring" not in skip:
            print(f"   recurring {args.recurring} every {args.interval}s", flush=True)
            results["recurring"] = await run_recurring(
                p, "fast", args.recurring, args.interval, args.spread, args.observe, hits
            )
    elif "api" not in skip:
        print(f"   api {args.api_seconds}s", flush=True)
        results["api"] = await run_api(p, args.api_seconds, hits, set_based=set_based)
    return results


def lane(topology: str) -> str:
    return "process" if topology == "stock" else "fast"


def table(report: JSON) -> str:
    """The results as a fixed-width table."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:,.0f}"

    width = max([9, *(len(c) + 1 for c in report["configurations"])])
    head = (
        f"{'scenario':<12}{'config':<{width}}{'lane':<8}{'jobs':>7}{'rate/min':>9}{'p50ms':>8}"
        f"{'p90ms':>8}{'p99ms':>8}{'maxms':>8}{'lost':>6}{'unended':>8}{'twice':>6}"
        f"{'cpu ms/job srv/wrk/pg':>24}{'peak MB srv/wrk/pg':>21}"
    )
    lines = [head, "-" * len(head)]
    for config, scenarios in report["configurations"].items():
        for name, r in scenarios.items():
            if name == "api":
                lines.append(
                    f"{'api':<12}{config:<{width}}{'-':<8}{'':>7}{r['runs_per_min']:>9,}"
                    f"  (create+Pending+Running+Completed, bulk, no execution)"
                )
                continue
            cpu = r["cpu"]
            worker = cpu.get("fast worker" if lane(config) == "fast" else "process worker", {})
            parts = [cpu.get("server", {}), worker, cpu.get("postgres", {})]
            cpus = "/".join(f"{c.get('cpu_ms_per_job') or 0:.0f}" for c in parts)
            mems = "/".join(f"{c.get('peak_rss_mb') or 0:.0f}" for c in parts)
            rate = r["rate_per_min"]
            lines.append(
                f"{name:<12}{config:<{width}}{lane(config):<8}{r['jobs']:>7}"
                f"{'-' if rate is None else f'{rate:,.0f}':>9}{ms(r['delay']['p50']):>8}"
                f"{ms(r['delay']['p90']):>8}{ms(r['delay']['p99']):>8}{ms(r['delay']['max']):>8}"
                f"{r['lost']:>6}{r['not_ended']:>8}{r['run_twice']:>6}{cpus:>24}"
                f"{mems:>21}"
            )
    for config, scenarios in report["configurations"].items():
        recurring = scenarios.get("recurring") or {}
        if polls := recurring.get("prefect_worker_poll"):
            lines.append(
                f"{config}: {recurring['tasks']:,} tasks created in {recurring['create_s']:,.0f} s;"
                f" a Prefect worker's poll of their pool updated"
                f" {polls['deployment_rows_updated_per_poll']:,} deployment rows and cost"
                f" {polls['server_ms_per_poll'] or 0:,.0f} ms server +"
                f" {polls['postgres_ms_per_poll'] or 0:,.0f} ms PostgreSQL CPU"
            )
    for line in report.get("ratios", []):
        lines.append(line)
    return "\n".join(lines)


def _ratio(a: float | None, b: float | None) -> float:
    return (a or 0.0) / max(b or 0.0, 1e-3)


def ratios(report: JSON) -> list[str]:
    out = []
    configs = report["configurations"]
    stock, fast = configs.get("stock", {}), configs.get("tuned-2", {})
    # The stock steady rate is compared with the fast lane's slower steady run when there is
    # one: the same kind of load, both below what their lane can bear.
    for name, fast_name in (("steady", "steady-slow"), ("burst", "burst")):
        s, f = stock.get(name), fast.get(fast_name) or fast.get(name)
        if s and f and s.get("rate_per_min") and f.get("rate_per_min"):
            out.append(
                f"{name}: fast lane rate {f['rate_per_min'] / s['rate_per_min']:.0f}x stock;"
                f" p99 delay stock/fast {_ratio(s['delay']['p99'], f['delay']['p99']):.0f}x"
            )
    a1, a2 = configs.get("tuned-1", {}).get("api"), fast.get("api")
    if a1 and a2 and a1["runs_per_s"]:
        out.append(f"api: 2 processes / 1 process = {a2['runs_per_s'] / a1['runs_per_s']:.2f}x")
    rest = configs.get(REST_PATH, {})
    for name in ("steady-slow", "steady", "burst", "recurring"):
        r, f = rest.get(name), fast.get(name)
        if r and f and r.get("delay") and f.get("delay"):
            out.append(
                f"{name}: set-based vs bulk REST fast lane: rate {f['rate_per_min']:,.0f} vs"
                f" {r['rate_per_min']:,.0f}/min, p50 {f['delay']['p50'] * 1000:,.0f} vs"
                f" {r['delay']['p50'] * 1000:,.0f} ms, p99 {f['delay']['p99'] * 1000:,.0f} vs"
                f" {r['delay']['p99'] * 1000:,.0f} ms, server+postgres CPU"
                f" {_server_ms(f):.1f} vs {_server_ms(r):.1f} ms/job"
            )
    ar = rest.get("api")
    if ar and a2 and ar["runs_per_s"]:
        out.append(
            f"api: set-based {a2['runs_per_min']:,}/min vs bulk REST {ar['runs_per_min']:,}/min"
            f" = {a2['runs_per_s'] / ar['runs_per_s']:.1f}x"
        )
    return out


def _server_ms(result: JSON) -> float:
    """Server (API and services) plus PostgreSQL CPU per job, in ms."""
    cpu = result.get("cpu", {})
    tiers = ("server", "postgres")  # "server" counts the services process too
    return sum((cpu.get(tier) or {}).get("cpu_ms_per_job") or 0.0 for tier in tiers)


def plot(report: JSON, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [
        (f"{t}/{n}", r)
        for t, c in report["configurations"].items()
        for n, r in c.items()
        if n != "api" and r.get("delays")
    ]
    if not series:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5))
    for label, r in series:
        delays = [max(d, 1e-4) for d in r["delays"]]
        left.plot(delays, [i / len(delays) for i in range(1, len(delays) + 1)], label=label)
        starts = r["starts"]
        if starts:
            width = max(1, int(starts[-1]) + 1)
            counts = [0] * width
            for s in starts:
                counts[min(width - 1, max(0, int(s)))] += 1
            right.plot(range(width), [c * 60 for c in counts], label=label, linewidth=0.8)
    left.set_xscale("log")
    left.set_xlabel("start delay, s (start_time - expected_start_time)")
    left.set_ylabel("fraction of jobs")
    left.set_title("start delay distribution (CDF)")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7)
    right.set_xlabel("seconds since the first job was due")
    right.set_ylabel("starts per minute (per-second count x 60)")
    right.set_title("start rate over time")
    right.grid(True, alpha=0.3)
    right.legend(fontsize=7)
    fig.suptitle(
        f"{report['machine']['host']}: {report['machine']['cpus']} CPUs, "
        f"load {report['load_start']} → {report['load_end']}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="short")
    for key, value in PROFILES["full"].items():
        kind = (
            (lambda s: s.lower() in ("1", "true", "yes"))
            if isinstance(value, bool)
            else type(value)
        )
        parser.add_argument(f"--{key.replace('_', '-')}", type=kind, default=None)
    parser.add_argument("--skip", default="", help="comma-separated: steady,burst,recurring,api")
    parser.add_argument(
        "--configs",
        default=f"stock,{REST_PATH},tuned-2,tuned-1",
        help="comma-separated: stock, tuned-1, tuned-2; tuned-2@NAME=VALUE is tuned-2 with one"
        " more setting, to compare two variants side by side in one invocation",
    )
    parser.add_argument(
        "--fast-on",
        default="tuned-2",
        help="comma-separated: tuned configurations that run the fast-lane scenarios"
        " (the others run only the API scenario)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the tuned platforms, e.g. TASKS_FAST_PROCESSES=16 (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    for key, value in PROFILES[args.profile].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.skip = [s for s in args.skip.split(",") if s]
    args.fast_on = [c for c in args.fast_on.split(",") if c]
    configs = [c for c in args.configs.split(",") if c]
    if len(set(configs)) != len(configs):
        raise SystemExit("bench: a configuration is named twice in --configs")
    for name in configs:
        split_config(name)  # a typo fails here, not after the first platform's minutes
    if not args.api_compare:
        configs = [c for c in configs if c != "tuned-1" or c in args.fast_on]
    report: JSON = {
        "started": dt.datetime.now(dt.UTC).isoformat(),
        "profile": args.profile,
        "parameters": {k: v for k, v in vars(args).items() if k not in ("out",)},
        "machine": {
            "host": socket.gethostname(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "kernel": host.release(),
        },
        "load_start": loadavg(),
        "calibration_ms_start": _probe.calibrate(),
        "configurations": {},
    }
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    began = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    raw = args.out / f"bench-{stamp}.json"
    try:
        for topology in configs:
            try:
                report["configurations"][topology] = configuration(topology, args, work)
            except Exception as exc:  # noqa: BLE001 - one failed configuration must not hide the rest
                print(f"!! {topology} failed: {str(exc).splitlines()[0]}", flush=True)
                report.setdefault("failures", {})[topology] = str(exc)[:2000]
            raw.write_text(json.dumps(report, indent=1))  # what is measured is never lost
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["load_end"] = loadavg()
    report["calibration_ms_end"] = _probe.calibrate()
    report["wall_s"] = round(time.time() - began)
    report["ratios"] = ratios(report)
    text_table = table(report)
    slim = json.loads(json.dumps(report))
    for scenarios in slim["configurations"].values():
        for r in scenarios.values():
            r.pop("delays", None)
            r.pop("starts", None)
    raw.write_text(json.dumps(report, indent=1))
    (args.out / "latest.json").write_text(json.dumps(slim, indent=1))
    (args.out / "latest.txt").write_text(text_table + "\n")
    plot(report, args.out / "latest.png")
    print(text_table)
    print(
        f"\nload average {report['load_start']} → {report['load_end']}; CPU calibration"
        f" {report['calibration_ms_start']} → {report['calibration_ms_end']} ms (lower is"
        f" faster); {report['wall_s']} s;"
        f" results in {args.out}/"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
