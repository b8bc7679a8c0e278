"""What ``tasks status`` shows and ``/v1/status`` answers: the platform's health at one moment.

Plain models and their rendering, with no server dependency, so the CLI and the REST client
read them; ``services.monitoring`` takes the snapshot.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class WorkerHealth(BaseModel):
    """One worker of a pool as Prefect last saw it."""

    name: str
    status: str
    last_heartbeat: dt.datetime | None
    heartbeat_age: float | None = Field(description="Seconds since its last heartbeat.")


class PoolHealth(BaseModel):
    """A work pool and its workers."""

    name: str
    type: str
    status: str | None
    paused: bool
    workers: list[WorkerHealth] = Field(default_factory=list)

    @property
    def online_workers(self) -> int:
        """How many of its workers Prefect considers online."""
        return sum(1 for w in self.workers if w.status == "ONLINE")


class LateJob(BaseModel):
    """A job whose time has come and that has not started."""

    id: str
    name: str
    task: str
    late_by: float


class ProcessUsage(BaseModel):
    """CPU and memory of one platform service."""

    service: str
    pid: int
    cpu_seconds: float
    rss_bytes: int


class Snapshot(BaseModel):
    """Everything ``tasks status`` prints and ``/metrics`` exposes, taken at one moment."""

    taken: dt.datetime
    server_ok: bool
    server_error: str | None = None
    database_ok: bool
    database_error: str | None = None
    jobs: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="task → Prefect state type → jobs."
    )
    delay_buckets: list[tuple[float, int]] = Field(default_factory=list)
    delay_count: int = 0
    delay_sum: float = 0.0
    scheduled: int = 0
    due: int = 0
    late: int = 0
    late_jobs: list[LateJob] = Field(default_factory=list)
    pools: list[PoolHealth] = Field(default_factory=list)
    failed_last_hour: int = 0
    ended_last_hour: int = 0
    canary_delay: float | None = None
    canary_last_start: dt.datetime | None = None
    processes: list[ProcessUsage] = Field(default_factory=list)

    @property
    def failure_rate(self) -> float | None:
        """Failed or crashed among the jobs that ended in the last hour."""
        return self.failed_last_hour / self.ended_last_hour if self.ended_last_hour else None


def render(snap: Snapshot) -> str:
    """The snapshot as the few lines an on-call engineer reads first."""

    def ok(flag: bool, error: str | None) -> str:
        return "ok" if flag else f"DOWN ({error})"

    lines = [
        f"server:   {ok(snap.server_ok, snap.server_error)}",
        f"database: {ok(snap.database_ok, snap.database_error)}",
    ]
    if not snap.database_ok:
        return "\n".join(lines)
    for pool in snap.pools:
        paused = ", paused" if pool.paused else ""
        lines.append(
            f"pool {pool.name} ({pool.type}): {pool.status or '?'}{paused}, "
            f"{pool.online_workers}/{len(pool.workers)} workers online"
        )
        for worker in pool.workers:
            seen = worker.heartbeat_age
            age = f"{seen:.0f}s ago" if seen is not None else "never"
            lines.append(f"  worker {worker.name}: {worker.status}, last heartbeat {age}")
    lines.append(f"backlog:  {snap.scheduled} scheduled, {snap.due} due, {snap.late} late")
    for job in snap.late_jobs:
        lines.append(f"  late {job.late_by:.0f}s: {job.task} job {job.name} ({job.id})")
    rate = snap.failure_rate
    shown = f"{rate:.1%}" if rate is not None else "-"
    lines.append(
        f"last hour: {snap.ended_last_hour} jobs ended, {snap.failed_last_hour} failed or "
        f"crashed (failure rate {shown})"
    )
    if snap.canary_delay is not None and snap.canary_last_start is not None:
        since = (snap.taken - snap.canary_last_start).total_seconds()
        lines.append(f"canary:   started {snap.canary_delay:.2f}s late, {since:.0f}s ago")
    else:
        lines.append("canary:   no run yet")
    for proc in snap.processes:
        lines.append(
            f"process {proc.service} (pid {proc.pid}): cpu {proc.cpu_seconds:.1f}s, "
            f"rss {proc.rss_bytes / 2**20:.0f} MiB"
        )
    return "\n".join(lines)
