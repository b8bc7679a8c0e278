"""The fast worker: claims runs ahead, holds each to its instant, runs it in a warm process.

One asyncio loop drives six small loops, each batching what many runs need:

1. **poll** (every ``poll_interval``): one ``get_scheduled_flow_runs`` call for the runs due
   within ``lookahead``, then bulk ``Scheduled → Pending`` claims of up to 50 runs per call.
   The server locks each run and aborts a second ``→ Pending`` (``PreventPendingTransitions``),
   so of two workers racing for a run exactly one gets ``ACCEPT``; only that one ever runs it.
   A bulk call's runs share one proposed state on the server, so each run is held to its own
   time, and a run of a task with a concurrency limit gets each state in a call of its own.
2. **release**: a timer on the earliest held run. At its instant (wall clock, never early)
   every due run that has a free warm process is moved ``Pending → Running`` in one bulk call;
   the server stamps ``start_time`` as it accepts. The code starts only after ``ACCEPT``.
   Prefect accepts ``Running`` even from ``Cancelled``, so each run is first checked to be
   still Pending: ``check_ahead`` seconds before its time, in one call for the runs next in
   line (the **check** loop), or in its release batch if that check is older than twice
   ``check_ahead``. A run cancelled while held therefore never starts unless the cancel lands
   in that last fraction of a second.
3. **report** (every ``flush_interval``): the output lines of all jobs in one ``POST /logs/``,
   then all ``Completed`` states in bulk calls; failures and retries carry their own message
   and go one call each. Logs always precede the final state they belong to.
4. **watch** (every ``watch_interval``): one filter call for running runs that left Running
   behind our back (cancelled, rescheduled); a cancelled running job's process is killed and
   the run set ``Cancelled``. Held runs are not watched: they are checked once, just before
   their release (see 2).
5. **heartbeat**: the worker shows as online in the pool's workers list.

Per job this makes three orchestrated transitions (Pending, Running, final), each shared with
the other runs of its batch, plus a share of the poll, log and watch calls: at a steady
30 jobs/s with a 0.2 s flush about 0.3 HTTP calls per job instead of about ten.

A failed attempt with retries left becomes ``AwaitingRetry`` (a Scheduled state at the retry
time) and goes back through the same exclusive claim, by whichever fast worker polls first;
the next attempt is named ``Retrying``. A timed-out attempt (``timeout`` per attempt) or a
cancelled job has its process killed and replaced; a process that dies by itself marks its
job ``Crashed``. On SIGTERM held runs are handed back (``Scheduled`` at their time) and running
ones get ``shutdown_grace`` seconds before they are killed and marked ``Crashed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import heapq
import json
import logging
import math
import os
import random
import sys
import time
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import httpx

from taskscheduler import misfire, models
from taskscheduler._prefect import rest as _api
from taskscheduler._prefect.rest import ACCEPT, JSON
from taskscheduler.fastlane.settings import BULK_LIMIT, FastLaneSettings
from taskscheduler.reliability import get_reliability_settings
from taskscheduler.sandbox import launch

log = logging.getLogger("taskscheduler.fastlane")

CHILD_MODULE = "taskscheduler.runtime.warm"
CHILD_LINE_LIMIT = 4 * 1024 * 1024
RESPAWN_BACKOFF = 1.0
LOG_CHUNK = 1000
WORKER_LOGGER = "taskscheduler.fastlane"
CANCELLED_BY_USER: JSON = {"type": "CANCELLED", "message": "Cancelled by user"}
# What the misfire decision needs to know of a claimed run.
MISFIRE_FACTS = ("id", "deployment_id", "expected_start_time", "auto_scheduled")
# Seconds the list of concurrency-limited deployments is trusted (see _limited_deployments).
LIMITS_MAX_AGE = 10.0


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
    parameters: JSON
    attempt: int
    claimed: float  # when this worker took it (moved it to Pending)
    checked: float = 0.0  # when a check that found it still Pending was sent
    checking: bool = False
    run: JSON = dataclasses.field(default_factory=dict)  # as claimed: schedule facts
    secrets: dict[str, str] | None = None  # its declared secrets' values, read while held
    child: Child | None = None
    timer: asyncio.TimerHandle | None = None
    killed: str | None = None  # why its process was killed: "timeout", "cancel", "shutdown"


class Child:
    """One warm interpreter and the job it runs, if any."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.job: Job | None = None
        self.ready = asyncio.Event()

    async def send(self, message: JSON) -> None:
        """Write one protocol line to the process."""
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        await self.process.stdin.drain()

    def kill(self) -> None:
        """SIGKILL the process (its reader then reports the exit)."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()


class FastWorker:
    """A fast lane worker on one work pool."""

    def __init__(
        self,
        settings: FastLaneSettings,
        api_url: str,
        *,
        headers: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.settings = settings
        self.api = _api.Api(api_url, timeout=settings.http_timeout, headers=headers)
        self.cwd = cwd or Path.cwd()
        self.children: set[Child] = set()
        self.idle: list[Child] = []
        self.held: dict[str, Job] = {}
        self.limited: frozenset[str] = frozenset()  # deployments with a concurrency limit
        self.limits_read_at = -math.inf
        self.alone: set[str] = set()  # runs of those deployments, proposed states one by one
        self.known: set[str] = set()  # deployments seen in claims; a new one rereads limits
        self.heap: list[tuple[float, str]] = []
        self.running: dict[str, Job] = {}
        self.logs: list[JSON] = []
        self.finals: list[tuple[str, JSON]] = []
        self.codes: dict[str, JSON] = {}
        self.stopping = asyncio.Event()
        self.wake = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()  # starts and spawns in flight
        self.readers: set[asyncio.Task[None]] = set()
        self.started = 0
        self.spawning = 0

    # ---- lifecycle --------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the pool until ``stop()``; then hand back, finish or crash what is ours."""
        # Online at once; the warm processes start meanwhile (seconds each on a busy machine).
        # Runs claimed before one is ready are simply held until it is.
        await self.api.heartbeat(
            self.settings.pool, self.settings.name, self.settings.heartbeat_interval
        )
        for _ in range(self.settings.processes):
            self._track(self._spawn())
        log.info(
            "fast worker %s serving pool %r with %d warm processes",
            self.settings.name,
            self.settings.pool,
            self.settings.processes,
        )
        loops = [
            asyncio.create_task(loop())
            for loop in (
                self._poll_loop,
                self._release_loop,
                self._check_loop,
                self._report_loop,
                self._watch_loop,
                self._heartbeat_loop,
            )
        ]
        await self.stopping.wait()
        self.wake.set()
        await asyncio.gather(*loops, return_exceptions=True)
        await self._shutdown()

    def stop(self) -> None:
        """Ask the worker to stop (safe from a signal handler)."""
        self.stopping.set()
        self.wake.set()

    async def _shutdown(self) -> None:
        held = list(self.held.values())
        self.held.clear()
        await asyncio.gather(*(self._hand_back(job) for job in held), return_exceptions=True)
        deadline = time.monotonic() + self.settings.shutdown_grace
        while (self.running or self.tasks) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for job in list(self.running.values()):
            job.killed = "shutdown"
            if job.child is not None:
                job.child.kill()
        for child in list(self.children):
            if child.job is None and child.process.stdin is not None:
                child.process.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(c.process.wait() for c in list(self.children))), 5.0
            )
        for child in list(self.children):
            child.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self.readers, return_exceptions=True), 5.0)
        await self._flush()
        await self.api.close()

    async def _hand_back(self, job: Job) -> None:
        """Give a held run back to the pool at its own time, for another worker to claim."""
        state = {
            "type": "SCHEDULED",
            "name": "Scheduled" if job.attempt == 1 else "AwaitingRetry",
            "message": f"Handed back by stopping fast worker {self.settings.name}",
            "state_details": {"scheduled_time": _api.iso(job.due)},
        }
        await self.api.set_state(job.id, state, force=True)

    def _track(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _wait(self, timeout: float | None) -> None:
        """Sleep until woken (new run, free process, stop) or ``timeout`` seconds pass."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout)
        self.wake.clear()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    # ---- warm processes ---------------------------------------------------------------------

    async def _spawn(self) -> None:
        self.spawning += 1
        try:
            # A sandbox with no network and no credential: the worker reports for it.
            env = dict(os.environ)
            command = launch.sandbox_of(env, door=False).command(
                [sys.executable, "-m", CHILD_MODULE]
            )
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                cwd=self.cwd,
                env=launch.job_environment(env, door=False),
                limit=CHILD_LINE_LIMIT,
            )
            child = Child(process)
            self.children.add(child)
            reader = asyncio.create_task(self._read(child))
            self.readers.add(reader)
            reader.add_done_callback(self.readers.discard)
            waiter = asyncio.create_task(child.ready.wait())
            await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        finally:
            self.spawning -= 1

    async def _read(self, child: Child) -> None:
        """Handle one process's messages until it exits, then account for its job."""
        assert child.process.stdout is not None
        while line := await child.process.stdout.readline():
            message = json.loads(line)
            op = message.get("op")
            if op == "log":
                self._log(
                    message["id"],
                    message["level"],
                    message["name"],
                    message["message"],
                    message["ts"],
                )
            elif op == "done":
                job = child.job
                if job is not None and job.id == message["id"] and job.killed is None:
                    child.job = None
                    self._end_attempt(job, ok=message["ok"], error=message.get("error"))
                    self._free(child)
            elif op == "ready":
                child.ready.set()
                self._free(child)
        code = await child.process.wait()
        self.children.discard(child)
        with contextlib.suppress(ValueError):
            self.idle.remove(child)
        job, child.job = child.job, None
        if job is not None:
            self._end_killed(job, code)
        if not self.stopping.is_set():
            if not child.ready.is_set():
                log.error("a warm process exited during start-up (code %s)", code)
                await asyncio.sleep(RESPAWN_BACKOFF)
            self._track(self._spawn())

    def _free(self, child: Child) -> None:
        if child in self.children and child not in self.idle:
            self.idle.append(child)
            self.wake.set()

    # ---- 1. claim ---------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                await self._poll()
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                log.warning("polling for scheduled runs failed: %s", exc)
            await self._sleep(self.settings.poll_interval - (time.monotonic() - started))

    async def _poll(self) -> None:
        busy = len(self.held) + len(self.running)
        if busy >= self.settings.max_held:
            return
        runs = await self.api.scheduled_runs(
            self.settings.pool,
            time.time() + self.settings.lookahead,
            min(self.settings.claim_limit, self.settings.max_held - busy),
        )
        fresh = [r for r in runs if r["id"] not in self.held and r["id"] not in self.running]
        if not fresh or self.stopping.is_set():
            return
        random.shuffle(fresh)  # two workers on one pool collide less when they race
        by_id = {r["id"]: r for r in fresh}
        deployments = {str(d) for r in fresh if (d := r.get("deployment_id"))}
        limited = await self._limited_deployments(new=bool(deployments - self.known))
        self.known |= deployments
        self.alone.update(r["id"] for r in fresh if r.get("deployment_id") in limited)
        parts = _api.chunks(list(by_id))
        results = await asyncio.gather(*(self._claim([by_id[i] for i in part]) for part in parts))
        claimed: list[Job] = []
        claimed_at = time.time()
        for result in results:
            for run_id in result:
                run = by_id[run_id]
                job = Job(
                    id=run_id,
                    due=own_time(run),
                    parameters=run.get("parameters") or {},
                    attempt=int(run.get("run_count") or 0) + 1,
                    claimed=claimed_at,
                    run={k: run.get(k) for k in MISFIRE_FACTS},
                )
                claimed.append(job)
        for job in claimed:
            self.held[job.id] = job
            heapq.heappush(self.heap, (job.due, job.id))
        if claimed:
            self.wake.set()
            await self._load_codes(claimed)

    async def _limited_deployments(self, *, new: bool) -> frozenset[str]:
        """The deployments with a concurrency limit, read again when ``new`` ones appear among
        the runs to claim, and at least every ``LIMITS_MAX_AGE``.

        Their runs get every state in a call of their own (``_propose``): the runs of a bulk
        call share one proposed state, and Prefect writes a limited run's concurrency lease
        into it (``SecureFlowConcurrencySlots`` on Pending, ``PreserveDeploymentConcurrencyLeaseId``
        after), so a run orchestrated after it in the same call would carry that lease and
        release it when it ends, letting a second job of the limited task start. Prefect names
        a deployment's limit ``deployment:<id>``. A task created with a limit is known from
        its first run on; a limit added to an existing one within the last ``LIMITS_MAX_AGE``
        is not yet.
        """
        if new or time.monotonic() - self.limits_read_at > LIMITS_MAX_AGE:
            names = await self.api.concurrency_limit_names()
            prefix = "deployment:"
            self.limited = frozenset(n.removeprefix(prefix) for n in names if n.startswith(prefix))
            self.limits_read_at = time.monotonic()
        return self.limited

    async def _claim(self, runs: list[JSON]) -> dict[str, JSON]:
        """``Scheduled → Pending`` for up to 50 runs; the outcomes of those we won.

        The Pending state names the earliest of the runs' own times as its scheduled time.
        Prefect 3.9's ``bulk_set_state`` shares one proposed state among the runs of a call,
        so left empty, the time its ``CopyScheduledTime`` copies from the first run orchestrated
        lands in every Pending state of the call (a bench run found 904 Pending states with
        94 distinct times, 2.8 s early to 1.8 s late). Later than a run's own time, it would
        make ``WaitForScheduledTime`` hold that run's ``Running`` past its instant; the
        earliest never does. Each run is held to its own time by this worker (``own_time``).
        """
        earliest = min(own_time(run) for run in runs)
        state = {
            "type": "PENDING",
            "state_details": {
                "transition_id": str(uuid.uuid4()),
                "scheduled_time": _api.iso(earliest),
            },
        }
        results = await self._propose([run["id"] for run in runs], state)
        return {run_id: r for run_id, r in results.items() if self._won(r, state)}

    async def _propose(self, run_ids: list[str], state: JSON) -> dict[str, JSON]:
        """One state for up to 50 runs: one bulk call, and one call per run of a limited task.

        Each call is retried once on a transport error with the same transition id. If the
        first was applied but its answer lost, the server rejects the repeat as a duplicate
        of the current state (``PreventDuplicateTransitions``), which ``_won`` then recognises
        by its transition id; without that the run would stay Pending forever.
        """
        together = [i for i in run_ids if i not in self.alone]
        calls = ([together] if together else []) + [[i] for i in run_ids if i in self.alone]
        results: dict[str, JSON] = {}
        for answer in await asyncio.gather(*(self._bulk(ids, state) for ids in calls)):
            results.update(answer)
        return results

    async def _bulk(self, run_ids: list[str], state: JSON) -> dict[str, JSON]:
        try:
            return await self.api.bulk_set_state(run_ids, state)
        except httpx.TransportError as exc:
            log.warning("state change failed (%s); trying once more", exc)
            return await self.api.bulk_set_state(run_ids, state)

    @staticmethod
    def _won(result: JSON, state: JSON) -> bool:
        if result["status"] == ACCEPT:
            return True
        current = result.get("state") or {}
        ours = state["state_details"]["transition_id"]
        return bool(
            current.get("type") == state["type"]
            and (current.get("state_details") or {}).get("transition_id") == ours
        )

    async def _load_codes(self, jobs: list[Job]) -> None:
        """Fetch the code versions of newly held jobs while they wait (documents are immutable)."""
        names = {str(j.parameters["code"]) for j in jobs if j.parameters.get("code")} - set(
            self.codes
        )
        for name in names:
            try:
                data = await self.api.code_block(name)
            except httpx.HTTPError as exc:
                log.warning("reading code %s failed: %s", name, exc)
                continue
            if data is not None:
                self.codes[name] = data
        for job in jobs:
            await self._load_secrets(job)

    async def _load_secrets(self, job: Job) -> None:
        """Read the values of the Secret blocks the job's task declared (names only in its
        parameters): the warm processes hold no credential to read them themselves."""
        declared = job.parameters.get("secrets") or {}
        if job.secrets is not None or not declared:
            return
        try:
            job.secrets = {
                env: await self.api.secret_value(str(block))
                for env, block in sorted(declared.items())
            }
        except (httpx.HTTPError, KeyError) as exc:
            log.warning("reading the secrets of %s failed: %s", job.id, exc)

    # ---- 2. hold and release ----------------------------------------------------------------

    async def _release_loop(self) -> None:
        while not self.stopping.is_set():
            while self.heap and self.heap[0][1] not in self.held:
                heapq.heappop(self.heap)
            if not self.heap:
                await self._wait(None)
                continue
            now = time.time()
            if self.heap[0][0] > now:
                await self._wait(self.heap[0][0] - now)
                continue
            if not self.idle:
                await self._wait(None)
                continue
            batch: list[Job] = []
            while (
                self.heap
                and self.heap[0][0] <= now
                and len(batch) < min(len(self.idle), BULK_LIMIT)
            ):
                _, run_id = heapq.heappop(self.heap)
                job = self.held.pop(run_id, None)
                if job is not None:
                    job.child = self.idle.pop()
                    job.child.job = job
                    batch.append(job)
            self._track(self._start(batch))

    async def _check_loop(self) -> None:
        """Check the held runs next in line, due within ``check_ahead``, to be still Pending.

        A run cancelled while held must not start, and Prefect would accept its ``Running``.
        Checking just ahead of the instant, in one call for the runs due by then, leaves only the
        ``Running`` proposal to be made at the instant: one round-trip instead of two.
        """
        ahead = self.settings.check_ahead
        if not ahead:
            return
        # Only the runs next in line: under a backlog thousands may be due, and checking them
        # all again and again would cost the server most when it is busiest.
        next_in_line = 2 * self.settings.processes
        while not self.stopping.is_set():
            await self._sleep(ahead / 3)
            sent = time.time()
            due = [j for j in self.held.values() if j.due <= sent + ahead and not j.checking]
            jobs = [
                j
                for j in heapq.nsmallest(next_in_line, due, key=lambda j: j.due)
                if j.checked <= sent - ahead
            ]
            if not jobs:
                continue
            for job in jobs:
                job.checking = True
            try:
                moved = await self._moved([j.id for j in jobs])
            except httpx.HTTPError as exc:
                log.warning("checking %d held runs failed: %s", len(jobs), exc)
                moved = None
            for job in jobs:
                job.checking = False
                if moved is None:
                    continue
                if job.id not in moved:
                    job.checked = sent
                elif self.held.pop(job.id, None) is job:
                    self._not_started(job, moved[job.id])
            if moved:
                self.wake.set()  # the heap has entries to drop

    async def _moved(self, run_ids: list[str]) -> dict[str, str | None]:
        """Those of ``run_ids`` no longer Pending, with the state they are in."""
        if not run_ids:
            return {}
        return {
            str(r["id"]): r.get("state_type")
            for r in await self.api.runs_not_in(run_ids, ["PENDING"])
        }

    def _not_started(self, job: Job, state_type: str | None) -> None:
        """A held run left Pending behind our back; a user's cancel is completed."""
        log.info("not starting %s: it is now %s", job.id, state_type)
        if state_type == "CANCELLING":
            self.finals.append((job.id, CANCELLED_BY_USER))

    async def _start(self, batch: list[Job]) -> None:
        """``Pending → Running`` for a batch due now; start the code of each accepted run.

        Runs without a fresh check (see ``_check_loop``) are checked first, in one call.
        """
        stale_before = time.time() - 2 * self.settings.check_ahead
        stale = [j.id for j in batch if j.checked <= stale_before]
        try:
            moved = await self._moved(stale)
        except httpx.HTTPError as exc:
            log.warning("checking %d runs before release failed: %s; retrying", len(stale), exc)
            for job in batch:
                self._requeue(job, time.time() + 0.5)
            return
        for job in batch:
            if job.id in moved:
                self._not_started(job, moved[job.id])
                self._forget(job)
        batch = [j for j in batch if j.id not in moved and not await self._skipped(j)]
        for name in ("Running", "Retrying"):
            group = [j for j in batch if (j.attempt == 1) == (name == "Running")]
            if not group:
                continue
            state = {
                "type": "RUNNING",
                "name": name,
                "state_details": {"transition_id": str(uuid.uuid4())},
            }
            try:
                results = await self._propose([j.id for j in group], state)
            except httpx.HTTPError as exc:
                log.warning("starting %d runs failed: %s; they are retried", len(group), exc)
                results = {}
                for job in group:
                    self._requeue(job, time.time() + 1.0)
                continue
            for job in group:
                result = results.get(job.id)
                if result is not None and self._won(result, state):
                    await self._run(job)
                elif result is not None and result["status"] == "WAIT":
                    delay = float(result["details"].get("delay_seconds") or 1)
                    self._requeue(job, time.time() + delay)
                else:
                    reason = (result or {}).get("details", {}).get("reason") or "the run is gone"
                    log.info("not starting %s: %s", job.id, reason)
                    self._forget(job)

    async def _skipped(self, job: Job) -> bool:
        """End a first attempt that starts too late for its task's misfire policy or late limit.

        The same decision as the process lane's (``taskscheduler.misfire``), taken at release,
        when the lateness is known, with the misfire policy judged as of the claim: the run ends
        Cancelled, named Skipped, with the reason.
        Only a late run costs a call (to count the task's newer due ticks).
        """
        if job.attempt > 1 or not job.run.get("expected_start_time"):
            return False
        policy = models.MisfirePolicy(job.parameters.get("misfire") or "all")
        limit = job.parameters.get("late_limit")
        late_limit = dt.timedelta(seconds=float(limit)) if limit else None
        expected = _api.epoch(job.run["expected_start_time"])
        lateness = dt.timedelta(seconds=time.time() - expected)
        if not misfire.needs_check(policy, late_limit, lateness):
            return False
        auto = bool(job.run.get("auto_scheduled"))
        try:
            newer = await self.api.newer_ticks_due(job.run, job.claimed) if auto else 0
            reason = misfire.skip_reason(
                policy=policy,
                late_limit=late_limit,
                lateness=lateness,
                picked_up_late=dt.timedelta(seconds=job.claimed - expected),
                auto_scheduled=auto,
                newer_due=newer,
                grace=get_reliability_settings().misfire_grace,
            )
        except httpx.HTTPError as exc:
            log.warning("misfire check of %s failed: %s; it runs", job.id, exc)
            return False
        if reason is None:
            return False
        log.info("skipped %s: %s", job.id, reason)
        self._log(job.id, logging.INFO, WORKER_LOGGER, f"Skipped: {reason}")
        self.finals.append(
            (job.id, {"type": "CANCELLED", "name": misfire.SKIPPED, "message": reason})
        )
        self._release_child(job)
        return True

    def _requeue(self, job: Job, due: float) -> None:
        self._release_child(job)
        job.due = due
        self.held[job.id] = job
        heapq.heappush(self.heap, (due, job.id))
        self.wake.set()

    def _forget(self, job: Job) -> None:
        """A claimed run this worker will not start after all (no longer ours)."""
        self._release_child(job)
        self.alone.discard(job.id)

    def _release_child(self, job: Job) -> None:
        child, job.child = job.child, None
        if child is not None:
            child.job = None
            self._free(child)

    async def _run(self, job: Job) -> None:
        assert job.child is not None
        params = job.parameters
        code = params.get("code")
        block = self.codes.get(str(code)) if code else None
        if code and block is None:
            with contextlib.suppress(httpx.HTTPError):
                block = await self.api.code_block(str(code))
            if block is not None:
                self.codes[str(code)] = block
        await self._load_secrets(job)
        self.running[job.id] = job
        self.started += 1
        version = f" version {block['version']}" if block else ""
        self._log(
            job.id,
            logging.INFO,
            WORKER_LOGGER,
            f"Running {params.get('task')}{version} in fast worker {self.settings.name}"
            + (f" (attempt {job.attempt})" if job.attempt > 1 else ""),
        )
        timeout = params.get("timeout")
        if timeout:
            job.timer = asyncio.get_running_loop().call_later(float(timeout), self._time_out, job)
        message = {
            "op": "run",
            "id": job.id,
            "task": params.get("task"),
            "code": code,
            "source": block.get("source") if block else None,
            "entry": (block or {}).get("entry") or params.get("entry") or "main",
            "entrypoint": params.get("entrypoint"),
            "parameters": params.get("parameters") or {},
            "secrets": job.secrets or {},
            "attempt": job.attempt,
        }
        # If the process died, its reader reports the job Crashed.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await job.child.send(message)

    def _time_out(self, job: Job) -> None:
        if job.child is not None and job.killed is None and self.running.get(job.id) is job:
            job.killed = "timeout"
            job.child.kill()

    # ---- 3. outcomes and reports ------------------------------------------------------------

    def _end_attempt(self, job: Job, *, ok: bool, error: str | None, name: str = "Failed") -> None:
        """Record one attempt's outcome: Completed, AwaitingRetry or Failed."""
        self.running.pop(job.id, None)
        if job.timer is not None:
            job.timer.cancel()
        if ok:
            self.finals.append((job.id, {"type": "COMPLETED"}))
            return
        params = job.parameters
        retries = int(params.get("retries") or 0)
        if job.attempt <= retries:
            delay = float(params.get("retry_delay") or 0) * 2 ** (job.attempt - 1)
            delay *= 1 + random.random() * float(params.get("retry_jitter") or 0)
            self._log(
                job.id,
                logging.INFO,
                WORKER_LOGGER,
                f"Retry {job.attempt}/{retries} will start in {delay:.1f} seconds",
            )
            state: JSON = {
                "type": "SCHEDULED",
                "name": "AwaitingRetry",
                "message": error,
                "state_details": {"scheduled_time": _api.iso(time.time() + delay)},
            }
        else:
            state = {"type": "FAILED", "name": name, "message": error}
        self.finals.append((job.id, state))

    def _end_killed(self, job: Job, code: int) -> None:
        """The job's process is gone: timed out, cancelled, stopped or crashed."""
        self.running.pop(job.id, None)
        if job.timer is not None:
            job.timer.cancel()
        if job.killed == "timeout":
            timeout = float(job.parameters.get("timeout") or 0)
            message = f"Job timed out after {timeout:g} seconds"
            self._log(job.id, logging.ERROR, WORKER_LOGGER, message)
            self._end_attempt(job, ok=False, error=message, name="TimedOut")
        elif job.killed == "cancel":
            self._log(
                job.id, logging.INFO, WORKER_LOGGER, "Cancelled: the job's process was stopped"
            )
            self.finals.append((job.id, CANCELLED_BY_USER))
        elif job.killed == "gone":
            pass  # someone else already ended the run
        else:
            why = "the fast worker stopped" if job.killed == "shutdown" else f"exit code {code}"
            message = f"The warm process running this job exited unexpectedly ({why})"
            self._log(job.id, logging.ERROR, WORKER_LOGGER, message)
            self.finals.append((job.id, {"type": "CRASHED", "message": message}))

    def _log(
        self, run_id: str, level: int, name: str, message: str, ts: float | None = None
    ) -> None:
        self.logs.append(
            {
                "name": name,
                "level": level,
                "message": message,
                "timestamp": _api.iso(ts if ts is not None else time.time()),
                "flow_run_id": run_id,
            }
        )

    async def _report_loop(self) -> None:
        while not self.stopping.is_set():
            await self._sleep(self.settings.flush_interval)
            await self._flush()

    async def _flush(self) -> None:
        """Send the logs, then the final states (so whoever sees a run end finds its logs)."""
        logs, self.logs = self.logs, []
        try:
            for i in range(0, len(logs), LOG_CHUNK):
                await self.api.create_logs(logs[i : i + LOG_CHUNK])
        except httpx.HTTPError as exc:
            log.warning("sending %d log lines failed: %s; keeping them", len(logs), exc)
            self.logs[:0] = logs
            return
        finals, self.finals = self.finals, []
        completed = [run_id for run_id, s in finals if s == {"type": "COMPLETED"}]
        others = [(run_id, s) for run_id, s in finals if s != {"type": "COMPLETED"}]
        # With a transition id, a repeat after a lost answer is refused, not a second state.
        done = {"type": "COMPLETED", "state_details": {"transition_id": str(uuid.uuid4())}}
        calls: list[Coroutine[Any, Any, JSON]] = [
            self._propose(part, done) for part in _api.chunks(completed)
        ]
        calls += [self.api.set_state(run_id, s) for run_id, s in others]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        self.alone.difference_update(run_id for run_id, _ in finals)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                log.warning("reporting final states failed: %s", outcome)

    # ---- 4. cancellations -------------------------------------------------------------------

    async def _watch_loop(self) -> None:
        """Stop the code of running jobs cancelled (or moved) behind the worker's back.

        Held runs are not watched: each is checked once, in its release batch, before it can
        start. Watching them too cost a call per 200 held runs every interval, so a backlog of
        thousands made every job dearer just when the server was busiest.
        """
        while not self.stopping.is_set():
            await self._sleep(self.settings.watch_interval)
            ids = list(self.running)
            if not ids:
                continue
            try:
                changed = await self.api.runs_not_in(ids, ["RUNNING"])
            except httpx.HTTPError as exc:
                log.warning("checking for cancellations failed: %s", exc)
                continue
            for run in changed:
                self._left_behind(str(run["id"]), run.get("state_type"))

    def _left_behind(self, run_id: str, state_type: str | None) -> None:
        """A running run is no longer Running: stop its code."""
        job = self.running.get(run_id)
        if job is None or job.child is None or job.killed is not None:
            return
        job.killed = "cancel" if state_type == "CANCELLING" else "gone"
        job.child.kill()

    # ---- 5. heartbeat -----------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        last_run_beat = time.monotonic()
        while not self.stopping.is_set():
            await self._sleep(self.settings.heartbeat_interval)
            with contextlib.suppress(httpx.HTTPError):
                await self.api.heartbeat(
                    self.settings.pool, self.settings.name, self.settings.heartbeat_interval
                )
            if time.monotonic() - last_run_beat >= self.settings.run_heartbeat_interval:
                last_run_beat = time.monotonic()
                with contextlib.suppress(httpx.HTTPError):
                    await self.api.run_heartbeats(list(self.running))
