"""Settings of the fast lane worker, read from ``TASKS_FAST_*`` environment variables."""

from __future__ import annotations

import functools
import socket

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The server rejects bulk state changes of more than 50 runs per call (BULK_OPERATION_LIMIT).
BULK_LIMIT = 50


class FastLaneSettings(BaseSettings):
    """How a fast worker claims, holds, runs and reports the jobs of its work pool."""

    model_config = SettingsConfigDict(env_prefix="TASKS_FAST_", extra="ignore")

    pool: str = Field(
        default="fast", description="Work pool whose scheduled runs this worker takes."
    )
    name: str = Field(
        default_factory=lambda: f"fast-{socket.gethostname()}",
        description="Worker name shown in the Prefect UI under the pool's workers.",
    )
    processes: int = Field(
        default=4,
        ge=1,
        le=256,
        description=(
            "Warm interpreters; each runs one job at a time, so this bounds the jobs running"
            " at once. A timed-out, cancelled or crashed job costs its process a restart."
        ),
    )
    lookahead: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description=(
            "Seconds ahead of their scheduled time that runs are claimed (moved to Pending)"
            " and held. Must exceed poll_interval plus a claim round-trip so no run is"
            " claimed late; longer holds mean a cancelled run stays Pending a while."
        ),
    )
    single_use: bool = Field(
        default=False,
        description=(
            "The sandbox lane: each job runs in a sandbox of its own, started ahead and"
            " discarded after it (never reused), without Prefect loaded, held to its task's"
            " memory and CPU limits and the lane's process limit (cgroups under ``cgroup``)."
        ),
    )
    max_processes: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description=(
            "Single-use only: when more runs are held ahead than ``processes``, start a"
            " sandbox for each, up to this many (an idle sandbox holds about 15 MB)."
        ),
    )
    cgroup: str | None = Field(
        default=None,
        description=(
            "Name of the cgroup v1 directories (under /sys/fs/cgroup/{memory,pids,cpu}) the"
            " platform delegated to this worker for its sandboxes' limits; unset or unusable:"
            " a sandbox caps only its own address space."
        ),
    )
    wall_clock_limit: float | None = Field(
        default=None,
        gt=0,
        description="Seconds any attempt may run here, whatever its task's timeout says.",
    )
    set_based: bool = Field(
        default=True,
        description=(
            "Claim, start and complete runs through the set-based endpoints the platform's"
            " Prefect server carries (hundreds of runs per transaction); off: Prefect's bulk"
            " REST orchestration, one transaction per run (the server must be Prefect's own)."
        ),
    )
    poll_interval: float = Field(
        default=0.5,
        gt=0,
        le=30,
        description="Seconds between asking the server for scheduled runs of the pool.",
    )
    check_ahead: float = Field(
        default=0.3,
        ge=0,
        le=5,
        description=(
            "Seconds before their time that held runs are checked to be still Pending (not"
            " cancelled), in one call for the runs next in line, so releasing them on the"
            " instant takes one round-trip instead of two. A check counts for twice this long;"
            " a run cancelled less than that before its release may still start. 0: check each"
            " batch at release."
        ),
    )
    claim_limit: int = Field(
        default=200,
        ge=1,
        le=200,
        description=(
            "Most scheduled runs fetched per poll (the server's PREFECT_API_DEFAULT_LIMIT,"
            " 200, is the most it returns), claimed in bulk calls of 50."
        ),
    )
    max_held: int = Field(
        default=5000,
        ge=1,
        description="Stop claiming while this many runs are held or running here.",
    )
    start_calls: int = Field(
        default=1,
        ge=1,
        le=64,
        description=(
            "Start calls in flight at once. Runs that come due while they are answered go"
            " together in the next call, so a busy server gets fewer and larger calls; at a"
            " low rate a run waits at most for one call's answer."
        ),
    )
    code_cache_mb: int = Field(
        default=64,
        ge=1,
        le=4096,
        description=(
            "Megabytes of code versions kept in memory, the least recently used dropped first"
            " (a version is read again if a job needs it later)."
        ),
    )
    flush_interval: float = Field(
        default=0.2,
        gt=0,
        le=10,
        description=(
            "Seconds between sending batched logs and final states; a job's end_time is"
            " recorded when its final state reaches the server, up to this much late."
        ),
    )
    watch_interval: float = Field(
        default=0.5,
        gt=0,
        le=30,
        description="Seconds between checks for running jobs cancelled by a user.",
    )
    heartbeat_interval: float = Field(
        default=10.0,
        gt=0,
        description="Seconds between worker heartbeats (the pool's workers list in the UI).",
    )
    run_heartbeat_interval: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Seconds between prefect.flow-run.heartbeat events of running jobs (the watchdog"
            " marks a job Crashed when they stop for TASKS_ZOMBIE_AFTER)."
        ),
    )
    shutdown_grace: float = Field(
        default=5.0,
        ge=0,
        description=(
            "On SIGTERM, seconds running jobs get to finish before they are killed and"
            " marked Crashed; held runs are handed back (Scheduled) at once."
        ),
    )
    http_timeout: float = Field(
        default=30.0, gt=0, description="Timeout of one call to the Prefect API, in seconds."
    )


@functools.cache
def get_fast_settings() -> FastLaneSettings:
    """The fast lane settings, read once on first use."""
    return FastLaneSettings()
