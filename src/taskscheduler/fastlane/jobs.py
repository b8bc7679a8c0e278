"""One job's life in the fast worker: claimed as a ``Job``, run in a warm process, ended.

A job's parameters are the job contract (``policy.JobParameters``) and its retries follow the
one rule every lane follows (``policy.RetryPolicy``). A failed attempt with retries left
becomes ``AwaitingRetry`` (a Scheduled state at the retry time) and goes back through the same
exclusive claim; a timed-out attempt (``timeout`` per attempt) or a cancelled job has its
process killed; a process that dies by itself marks its job ``Crashed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import time
from typing import TYPE_CHECKING

import httpx
from cachetools import LRUCache

from taskscheduler._prefect import rest as _api
from taskscheduler._prefect.rest import JSON
from taskscheduler.fastlane.loop import Loop
from taskscheduler.fastlane.reporter import COMPLETED, Reporter
from taskscheduler.fastlane.settings import FastLaneSettings
from taskscheduler.policy import JobParameters
from taskscheduler.sandbox.limits import Limits

if TYPE_CHECKING:
    from taskscheduler.fastlane.children import Child

log = logging.getLogger("taskscheduler.fastlane")

WORKER_LOGGER = "taskscheduler.fastlane"
CANCELLED_BY_USER: JSON = {"type": "CANCELLED", "message": "Cancelled by user"}
# What the misfire decision needs to know of a claimed run.
MISFIRE_FACTS = ("id", "deployment_id", "expected_start_time", "auto_scheduled")


def own_time(run: JSON) -> float:
    """When a run read from the API is due.

    Its Scheduled state's time, which Prefect keeps as ``next_scheduled_start_time``; a retry's
    differs from the run's first expected start.
    """
    return _api.epoch(run.get("next_scheduled_start_time") or run["expected_start_time"])


@dataclasses.dataclass
class Job:
    """A claimed run: held until ``due``, then one attempt in a warm process."""

    id: str
    due: float
    params: JobParameters
    attempt: int
    claimed: float  # when this worker took it (moved it to Pending)
    # On the set-based path, the state the run must still be in for this worker to move it on
    # (its Pending, then its Running state); None on Prefect's REST path.
    state_id: str | None = None
    checked: float = 0.0  # when a check that found it still Pending was sent
    checking: bool = False
    run: JSON = dataclasses.field(default_factory=dict)  # as claimed: schedule facts
    secrets: dict[str, str] | None = None  # its declared secrets' values, read while held
    child: Child | None = None
    timer: asyncio.TimerHandle | None = None
    killed: str | None = None  # why its process was killed: "timeout", "cancel", "shutdown"
    limits: Limits | None = None  # on the sandbox lane, what its sandbox is held to

    @classmethod
    def claimed_run(cls, run: JSON, claimed: float, state_id: str | None = None) -> Job:
        """The job of a run this worker has just claimed; ValueError if it is not a job's."""
        params = JobParameters.read(run.get("parameters") or {})
        if params is None:
            raise ValueError("its parameters name no task")
        return cls(
            id=str(run["id"]),
            due=own_time(run),
            params=params,
            attempt=int(run.get("run_count") or 0) + 1,
            claimed=claimed,
            state_id=state_id,
            run={k: run.get(k) for k in MISFIRE_FACTS},
        )

    def run_message(self, block: JSON | None, rlimits: dict[str, int] | None = None) -> JSON:
        """The protocol line that runs this attempt in a warm process (``runtime.warm``)."""
        p = self.params
        message: JSON = {
            "op": "run",
            "id": self.id,
            "task": p.task,
            "code": p.code,
            "source": block.get("source") if block else None,
            "entry": (block or {}).get("entry") or p.entry or "main",
            "entrypoint": p.entrypoint,
            "parameters": p.parameters,
            "secrets": self.secrets or {},
            "attempt": self.attempt,
        }
        if rlimits:
            message["rlimits"] = rlimits
        return message

    @property
    def timeout(self) -> float | None:
        """Seconds this attempt may run: its task's timeout, within the lane's wall clock."""
        return self.limits.wall_clock if self.limits is not None else self.params.timeout

    def end_of_attempt(
        self, *, ok: bool, error: str | None, name: str = "Failed", rng: random.Random | None = None
    ) -> tuple[JSON, str | None]:
        """The state an attempt ends in — Completed, AwaitingRetry or Failed (``name``) — and
        the line to log about it, if any."""
        if ok:
            return COMPLETED, None
        retry = self.params.retry
        if not retry.allows_another(self.attempt):
            return {"type": "FAILED", "name": name, "message": error}, None
        delay = retry.next_delay(self.attempt, rng=rng)
        state: JSON = {
            "type": "SCHEDULED",
            "name": "AwaitingRetry",
            "message": error,
            "state_details": {"scheduled_time": _api.iso(time.time() + delay)},
        }
        return state, f"Retry {self.attempt}/{retry.retries} will start in {delay:.1f} seconds"


class Jobs:
    """The jobs running in warm processes, and the code and secrets they need."""

    def __init__(self, settings: FastLaneSettings, api: _api.Api, reporter: Reporter) -> None:
        self.settings = settings
        self.api = api
        self.reporter = reporter
        self.running: dict[str, Job] = {}
        # Code block documents by name (immutable), bounded by their size in JSON.
        self.codes: LRUCache[str, JSON] = LRUCache(
            settings.code_cache_mb * 2**20, getsizeof=_json_size
        )
        self.started = 0

    # ---- before the start -------------------------------------------------------------------

    async def load_codes(self, jobs: list[Job]) -> None:
        """Fetch the code versions of newly held jobs while they wait, in one call for up to 200
        (documents are immutable)."""
        if names := sorted({j.params.code for j in jobs if j.params.code} - set(self.codes)):
            try:
                self.codes.update(await self.api.code_blocks(names))
            except httpx.HTTPError as exc:  # each job then reads its code as it starts
                log.warning("reading %d code versions failed: %s", len(names), exc)
        for job in jobs:
            await self.load_secrets(job)

    async def load_secrets(self, job: Job) -> None:
        """Read the values of the Secret blocks the job's task declared (names only in its
        parameters): the warm processes hold no credential to read them themselves."""
        declared = job.params.secrets or {}
        if job.secrets is not None or not declared:
            return
        try:
            job.secrets = {
                env: await self.api.secret_value(str(block))
                for env, block in sorted(declared.items())
            }
        except (httpx.HTTPError, KeyError) as exc:
            log.warning("reading the secrets of %s failed: %s", job.id, exc)

    # ---- the attempt ------------------------------------------------------------------------

    async def run(self, job: Job) -> None:
        """Send a job whose ``Running`` was accepted to the warm process it was given."""
        assert job.child is not None
        code = job.params.code
        block = self.codes.get(code) if code else None
        if code and block is None:
            with contextlib.suppress(httpx.HTTPError):
                block = await self.api.code_block(code)
            if block is not None:
                self.codes[code] = block
        await self.load_secrets(job)
        self.running[job.id] = job
        self.started += 1
        version = f" version {block['version']}" if block else ""
        where = f"fast worker {self.settings.name}"
        rlimits: dict[str, int] = {}
        if self.settings.single_use:
            p = job.params
            job.limits = Limits.of(p.memory_mb, p.cpus, p.timeout, self.settings.wall_clock_limit)
            try:
                rlimits = job.child.limit(job.limits)
            except OSError as exc:  # never run code its limits do not hold
                self.reporter.log(
                    job.id, logging.ERROR, WORKER_LOGGER, f"Could not apply its limits: {exc}"
                )
                job.child.kill()  # its reader ends the job Crashed
                return
            where = f"a fresh sandbox of worker {self.settings.name} ({job.limits.describe()})"
        self.reporter.log(
            job.id,
            logging.INFO,
            WORKER_LOGGER,
            f"Running {job.params.task}{version} in {where}"
            + (f" (attempt {job.attempt})" if job.attempt > 1 else ""),
        )
        if job.timeout:
            job.timer = asyncio.get_running_loop().call_later(job.timeout, self.time_out, job)
        # If the process died, its reader reports the job Crashed.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await job.child.send(job.run_message(block, rlimits))

    def time_out(self, job: Job) -> None:
        """Kill the process of an attempt that ran past its timeout."""
        if job.child is not None and job.killed is None and self.running.get(job.id) is job:
            job.killed = "timeout"
            job.child.kill()

    def kill_all(self, why: str) -> None:
        """Kill the processes of all running jobs (the worker is stopping)."""
        for job in list(self.running.values()):
            job.killed = why
            if job.child is not None:
                job.child.kill()

    # ---- the end ----------------------------------------------------------------------------

    def end_attempt(self, job: Job, *, ok: bool, error: str | None, name: str = "Failed") -> None:
        """Record one attempt's outcome: Completed, AwaitingRetry or Failed."""
        self.running.pop(job.id, None)
        if job.timer is not None:
            job.timer.cancel()
        state, line = job.end_of_attempt(ok=ok, error=error, name=name)
        if line is not None:
            self.reporter.log(job.id, logging.INFO, WORKER_LOGGER, line)
        self.reporter.final(job.id, state, running=job.state_id)

    def end_killed(self, job: Job, code: int, *, out_of_memory: bool = False) -> None:
        """The job's process is gone: timed out, cancelled, stopped, out of memory or crashed."""
        self.running.pop(job.id, None)
        if job.timer is not None:
            job.timer.cancel()
        if job.killed == "timeout":
            message = f"Job timed out after {job.timeout or 0:g} seconds"
            self.reporter.log(job.id, logging.ERROR, WORKER_LOGGER, message)
            self.end_attempt(job, ok=False, error=message, name="TimedOut")
        elif job.killed == "cancel":
            self.reporter.log(
                job.id, logging.INFO, WORKER_LOGGER, "Cancelled: the job's process was stopped"
            )
            self.reporter.final(job.id, CANCELLED_BY_USER)
        elif job.killed == "gone":
            pass  # someone else already ended the run
        elif out_of_memory and job.limits is not None:
            message = (
                f"Killed: the job used more than its memory limit of {job.limits.memory_mb} MiB"
            )
            self.reporter.log(job.id, logging.ERROR, WORKER_LOGGER, message)
            self.end_attempt(job, ok=False, error=message, name="OutOfMemory")
        else:
            why = "the fast worker stopped" if job.killed == "shutdown" else f"exit code {code}"
            message = f"The warm process running this job exited unexpectedly ({why})"
            self.reporter.log(job.id, logging.ERROR, WORKER_LOGGER, message)
            self.reporter.final(job.id, {"type": "CRASHED", "message": message})

    # ---- cancellations ----------------------------------------------------------------------

    async def watch(self, loop: Loop) -> None:
        """Stop the code of running jobs cancelled (or moved) behind the worker's back.

        Held runs are not watched: each is checked once, in its release batch, before it can
        start. Watching them too cost a call per 200 held runs every interval, so a backlog of
        thousands made every job dearer just when the server was busiest.
        """
        while not loop.stopped:
            await loop.sleep(self.settings.watch_interval)
            ids = list(self.running)
            if not ids:
                continue
            try:
                changed = await self.api.runs_not_in(ids, ["RUNNING"])
            except httpx.HTTPError as exc:
                log.warning("checking for cancellations failed: %s", exc)
                continue
            for run in changed:
                self.left_behind(str(run["id"]), run.get("state_type"))

    def left_behind(self, run_id: str, state_type: str | None) -> None:
        """A running run is no longer Running: stop its code."""
        job = self.running.get(run_id)
        if job is None or job.child is None or job.killed is not None:
            return
        job.killed = "cancel" if state_type == "CANCELLING" else "gone"
        job.child.kill()


def _json_size(document: JSON) -> int:
    """A code document's weight in the cache: its length as JSON."""
    return len(json.dumps(document))
