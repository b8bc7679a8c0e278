"""Platform health in figures: one ``Snapshot`` for ``tasks status`` and for ``GET /metrics``.

The figures are read from Prefect's own tables in PostgreSQL (read-only, a handful of
aggregate queries), never copied: Prefect's API has no group-by, and counting runs per task
and state through it would cost one call per pair on every scrape. The price is coupling to
Prefect's schema (``flow_run``, ``deployment``, ``work_pool``, ``worker``): Prefect is pinned
(3.9.1) and ``tests/integration/test_monitoring.py`` compares these figures with what
Prefect's API reports, so a schema change fails a test rather than a dashboard.

Process CPU and memory come from ``/proc`` for every service whose PID file ``up`` wrote.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from taskscheduler._prefect import gateway, tables
from taskscheduler.models.status import (
    LateJob,
    PoolHealth,
    ProcessUsage,
    Snapshot,
    WorkerHealth,
    render,
)
from taskscheduler.settings import Settings, get_settings

__all__ = [
    "LateJob",
    "PlatformCollector",
    "PoolHealth",
    "ProcessUsage",
    "Snapshot",
    "WorkerHealth",
    "render",
    "take_snapshot",
]

CANARY_TASK = "tasks-canary"
DELAY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
HEALTH_TIMEOUT = 5.0
LATE_LIST = 10


async def take_snapshot(
    settings: Settings | None = None, engine: AsyncEngine | None = None
) -> Snapshot:
    """Read the platform's health now; parts that cannot be read are reported as down."""
    settings = settings or get_settings()
    snapshot = Snapshot(taken=dt.datetime.now(dt.UTC), server_ok=False, database_ok=False)
    snapshot.server_ok, snapshot.server_error = await _server_health()
    own = engine is None
    engine = engine or create_async_engine(settings.asyncpg_url, poolclass=NullPool)
    try:
        await _read_database(engine, snapshot)
        snapshot.database_ok = True
    except Exception as exc:  # noqa: BLE001 - a down database is a figure, not a crash
        snapshot.database_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    finally:
        if own:
            await engine.dispose()
    snapshot.processes = service_processes(settings.state_dir)
    return snapshot


async def _server_health() -> tuple[bool, str | None]:
    return await gateway.server_health(timeout=HEALTH_TIMEOUT)


async def _read_database(engine: AsyncEngine, snapshot: Snapshot) -> None:
    figures = await tables.read_figures(engine, buckets=DELAY_BUCKETS, late=LATE_LIST)
    for row in figures.jobs:
        snapshot.jobs.setdefault(row["task"], {})[str(row["state"]).lower()] = int(row["n"])
    delay = figures.delay
    snapshot.delay_buckets = [(b, int(delay[f"b{i}"])) for i, b in enumerate(DELAY_BUCKETS)]
    snapshot.delay_count = int(delay["total"])
    snapshot.delay_sum = float(delay["total_delay"])
    backlog = figures.backlog
    snapshot.scheduled, snapshot.due, snapshot.late = (
        int(backlog["scheduled"]),
        int(backlog["due"]),
        int(backlog["late"]),
    )
    snapshot.late_jobs = [
        LateJob(id=str(r["id"]), name=r["name"], task=r["task"], late_by=float(r["late_by"]))
        for r in figures.late_jobs
    ]
    pools: dict[str, PoolHealth] = {}
    now = dt.datetime.now(dt.UTC)
    for r in figures.pools:
        pool = pools.setdefault(
            r["pool"],
            PoolHealth(name=r["pool"], type=r["type"], status=r["status"], paused=r["is_paused"]),
        )
        if r["worker"] is not None:
            beat = r["last_heartbeat_time"]
            if beat is not None and beat.tzinfo is None:
                beat = beat.replace(tzinfo=dt.UTC)
            pool.workers.append(
                WorkerHealth(
                    name=r["worker"],
                    status=str(r["worker_status"]),
                    last_heartbeat=beat,
                    heartbeat_age=(now - beat).total_seconds() if beat else None,
                )
            )
    snapshot.pools = list(pools.values())
    snapshot.failed_last_hour = int(figures.outcomes["failed"])
    snapshot.ended_last_hour = int(figures.outcomes["ended"])
    canary = await tables.last_start(engine, CANARY_TASK)
    if canary is not None:
        snapshot.canary_delay = float(canary["delay"])
        snapshot.canary_last_start = dt.datetime.fromtimestamp(float(canary["started"]), dt.UTC)


def service_processes(state_dir: Path) -> list[ProcessUsage]:
    """CPU time and resident memory of every service with a live PID file in ``state_dir``."""
    ticks = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    found: list[ProcessUsage] = []
    for pid_file in sorted(Path(state_dir).glob("*.pid")):
        try:
            pid = int(pid_file.read_text().strip())
            raw = Path(f"/proc/{pid}/stat").read_text()
            rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
        found.append(
            ProcessUsage(
                service=pid_file.stem, pid=pid, cpu_seconds=cpu, rss_bytes=rss_pages * page
            )
        )
    return found


class PlatformCollector(Collector):
    """The snapshot as Prometheus metrics; ``await refresh()`` before each scrape."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings
        self.snapshot: Snapshot | None = None
        self.duration = 0.0

    async def refresh(self, engine: AsyncEngine | None = None) -> Snapshot:
        """Take a new snapshot (with the caller's engine when it has one)."""
        started = time.monotonic()
        self.snapshot = await take_snapshot(self.settings, engine)
        self.duration = time.monotonic() - started
        return self.snapshot

    def collect(self) -> Iterator[Any]:
        """The metric families of the last snapshot."""
        snap = self.snapshot
        if snap is None:
            return
        yield _gauge(
            "taskscheduler_prefect_api_up",
            "1 when the Prefect API answers healthy.",
            [([], int(snap.server_ok))],
        )
        yield _gauge(
            "taskscheduler_database_up", "1 when PostgreSQL answers.", [([], int(snap.database_ok))]
        )
        yield _gauge(
            "taskscheduler_scrape_duration_seconds",
            "Time to take the snapshot.",
            [([], self.duration)],
        )
        if snap.database_ok:
            yield from self._database_families(snap)
        cpu = CounterMetricFamily(
            "taskscheduler_process_cpu_seconds",
            "CPU time of a platform service.",
            labels=["service"],
        )
        memory = GaugeMetricFamily(
            "taskscheduler_process_resident_memory_bytes",
            "Resident memory of a platform service.",
            labels=["service"],
        )
        for proc in snap.processes:
            cpu.add_metric([proc.service], proc.cpu_seconds)
            memory.add_metric([proc.service], proc.rss_bytes)
        yield cpu
        yield memory

    def _database_families(self, snap: Snapshot) -> Iterator[Any]:
        jobs = GaugeMetricFamily(
            "taskscheduler_task_jobs",
            "Jobs by task and Prefect state type.",
            labels=["task", "state"],
        )
        for task, states in sorted(snap.jobs.items()):
            for state, count in sorted(states.items()):
                jobs.add_metric([task, state], count)
        yield jobs
        yield HistogramMetricFamily(
            "taskscheduler_job_start_delay_seconds",
            "Start delay of jobs (start time minus scheduled time), all jobs Prefect keeps.",
            buckets=[(str(b), c) for b, c in snap.delay_buckets] + [("+Inf", snap.delay_count)],
            sum_value=snap.delay_sum,
        )
        yield _gauge(
            "taskscheduler_backlog_jobs",
            "Waiting jobs: all scheduled, due (time has come), late (marked Late).",
            [(["scheduled"], snap.scheduled), (["due"], snap.due), (["late"], snap.late)],
            ["kind"],
        )
        yield _gauge(
            "taskscheduler_jobs_ended_last_hour",
            "Jobs ended in the last hour.",
            [(["failed"], snap.failed_last_hour), (["all"], snap.ended_last_hour)],
            ["outcome"],
        )
        pools = GaugeMetricFamily(
            "taskscheduler_work_pool_ready",
            "1 when the pool is READY (has a live worker).",
            labels=["pool", "type"],
        )
        online = GaugeMetricFamily(
            "taskscheduler_worker_online",
            "1 when Prefect sees the worker online.",
            labels=["pool", "worker"],
        )
        beats = GaugeMetricFamily(
            "taskscheduler_worker_last_heartbeat_timestamp_seconds",
            "Unix time of the worker's last heartbeat.",
            labels=["pool", "worker"],
        )
        for pool in snap.pools:
            pools.add_metric([pool.name, pool.type], int(pool.status == "READY"))
            for worker in pool.workers:
                online.add_metric([pool.name, worker.name], int(worker.status == "ONLINE"))
                if worker.last_heartbeat is not None:
                    beats.add_metric([pool.name, worker.name], worker.last_heartbeat.timestamp())
        yield pools
        yield online
        yield beats
        if snap.canary_delay is not None and snap.canary_last_start is not None:
            yield _gauge(
                "taskscheduler_canary_delay_seconds",
                "Start delay of the canary task's latest job (end-to-end scheduling).",
                [([], snap.canary_delay)],
            )
            yield _gauge(
                "taskscheduler_canary_last_start_timestamp_seconds",
                "Unix time the canary's latest job started (stale: scheduling stopped).",
                [([], snap.canary_last_start.timestamp())],
            )


def _gauge(
    name: str,
    documentation: str,
    values: list[tuple[list[str], float]],
    labels: list[str] | None = None,
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=labels or [])
    for label_values, value in values:
        family.add_metric(label_values, value)
    return family
