"""Holding claimed runs to their instant, and releasing them into warm processes.

A timer on the earliest held run: at its instant (wall clock, never early) every due run that
has a free warm process is moved ``Pending → Running`` in one call; the server stamps
``start_time`` as it accepts, and the code starts only after it did. At most ``start_calls``
such calls are in flight: runs that come due meanwhile wait for an answer and go together in
the next call, so the busier the server, the fewer and larger the calls (without the
bound, a steady stream whose jobs each have an instant of their own made one call a job).

On the set-based path that call is a conditional update: a run starts only if it is still in
the Pending state its claim wrote, so a run cancelled (or changed in any way) while held never
starts, and nothing is checked beforehand.

On Prefect's REST path, Prefect accepts ``Running`` even from ``Cancelled``, so each run is
first checked to be still Pending: ``check_ahead`` seconds before its time, in one call for the
runs next in line (``check``), or in its release batch if that check is older than twice
``check_ahead``. A run cancelled while held then never starts unless the cancel lands in that
last fraction of a second.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import logging
import time
import uuid

import httpx

from taskscheduler import misfire
from taskscheduler._prefect import rest as _api
from taskscheduler.fastlane.children import Children
from taskscheduler.fastlane.claims import Claims, Proposals
from taskscheduler.fastlane.jobs import CANCELLED_BY_USER, WORKER_LOGGER, Job, Jobs
from taskscheduler.fastlane.loop import Loop
from taskscheduler.fastlane.reporter import Reporter
from taskscheduler.fastlane.settings import BULK_LIMIT, FastLaneSettings
from taskscheduler.reliability import get_reliability_settings

log = logging.getLogger("taskscheduler.fastlane")

# Tries of a set-based start while the server cannot be reached (0.25 s, 0.5 s, 1 s apart).
START_TRIES = 4


class Release:
    """The held runs, by id and in order of their instants, and their start."""

    def __init__(
        self,
        settings: FastLaneSettings,
        loop: Loop,
        claims: Claims,
        proposals: Proposals,
        children: Children,
        jobs: Jobs,
        reporter: Reporter,
    ) -> None:
        self.settings = settings
        self.loop = loop
        self.claims = claims
        self.proposals = proposals
        self.children = children
        self.jobs = jobs
        self.reporter = reporter
        self.held: dict[str, Job] = {}
        self.heap: list[tuple[float, str]] = []  # (due, id); entries of unheld runs are dropped
        self.starting = 0  # start calls in flight

    def hold(self, job: Job) -> None:
        """Hold ``job`` until ``job.due``."""
        self.held[job.id] = job
        heapq.heappush(self.heap, (job.due, job.id))

    def take_all(self) -> list[Job]:
        """Stop holding anything; the runs that were held."""
        held = list(self.held.values())
        self.held.clear()
        return held

    def requeue(self, job: Job, due: float) -> None:
        """Hold ``job`` again, until ``due``."""
        self.children.release(job)
        job.due = due
        self.hold(job)
        self.loop.wake.set()

    def forget(self, job: Job) -> None:
        """A claimed run this worker will not start after all (no longer ours)."""
        self.children.release(job)
        self.proposals.forget([job.id])

    def not_started(self, job: Job, state_type: str | None) -> None:
        """A held run left Pending behind our back; a user's cancel is completed."""
        log.info("not starting %s: it is now %s", job.id, state_type)
        if state_type == "CANCELLING":
            self.reporter.final(job.id, CANCELLED_BY_USER)

    async def run(self) -> None:
        """Release due runs into free processes, batch by batch, until the worker stops."""
        while not self.loop.stopped:
            while self.heap and self.heap[0][1] not in self.held:
                heapq.heappop(self.heap)
            if not self.heap:
                await self.loop.wait(None)
                continue
            now = time.time()
            if self.heap[0][0] > now:
                await self.loop.wait(self.heap[0][0] - now)
                continue
            if not self.children.idle or self.starting >= self.settings.start_calls:
                await self.loop.wait(None)
                continue
            batch: list[Job] = []
            room = min(len(self.children.idle), BULK_LIMIT)  # each take makes one less idle
            while self.heap and self.heap[0][0] <= now and len(batch) < room:
                _, run_id = heapq.heappop(self.heap)
                job = self.held.pop(run_id, None)
                if job is not None:
                    self.children.take(job)
                    batch.append(job)
            self.starting += 1
            self.loop.track(self.start_counted(batch))

    async def start_counted(self, batch: list[Job]) -> None:
        """``start``, counted among the start calls in flight (``start_calls``)."""
        try:
            await self.start(batch)
        finally:
            self.starting -= 1
            self.loop.wake.set()

    async def check(self) -> None:
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
        while not self.loop.stopped:
            await self.loop.sleep(ahead / 3)
            sent = time.time()
            due = [
                j
                for j in self.held.values()
                if j.state_id is None and j.due <= sent + ahead and not j.checking
            ]
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
                moved = await self.claims.moved([j.id for j in jobs])
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
                    self.not_started(job, moved[job.id])
            if moved:
                self.loop.wake.set()  # the heap has entries to drop

    async def start(self, batch: list[Job]) -> None:
        """``Pending → Running`` for a batch due now; start the code of each run started."""
        claimed_by_set = [j for j in batch if j.state_id is not None]
        if claimed_by_set:
            await self.start_set(claimed_by_set)
        if len(claimed_by_set) < len(batch):
            await self.start_rest([j for j in batch if j.state_id is None])

    async def start_set(self, batch: list[Job]) -> None:
        """Start runs still in the Pending state their claim wrote, in one transaction.

        Sent again with the same transition id while the server cannot be reached (a repeat
        counts what the first call started), for up to ``START_TRIES`` tries; then the runs are
        held again and retried.
        """
        batch = [j for j in batch if not await self.skipped(j)]
        if not batch:
            return
        moves = [
            {"id": j.id, "state_id": j.state_id, "name": "Retrying" if j.attempt > 1 else "Running"}
            for j in batch
        ]
        transition_id = str(uuid.uuid4())
        for attempt in range(START_TRIES):
            try:
                started = await self.claims.api.fast_start(moves, transition_id)
                break
            except httpx.HTTPError as exc:
                log.warning("starting %d runs failed: %s", len(batch), exc)
                await asyncio.sleep(0.25 * 2**attempt)
        else:
            for job in batch:
                self.requeue(job, time.time() + 1.0)
            return
        left = [j for j in batch if j.id not in started]
        for job in batch:
            if job.id in started:
                job.state_id = started[job.id]
                await self.jobs.run(job)
        if left:
            try:
                moved = await self.claims.moved([j.id for j in left])
            except httpx.HTTPError:
                moved = {}
            for job in left:
                self.not_started(job, moved.get(job.id))
                self.forget(job)

    async def start_rest(self, batch: list[Job]) -> None:
        """The same through Prefect's orchestration; runs without a fresh check (see
        ``check``) are checked first, in one call."""
        stale_before = time.time() - 2 * self.settings.check_ahead
        stale = [j.id for j in batch if j.checked <= stale_before]
        try:
            moved = await self.claims.moved(stale)
        except httpx.HTTPError as exc:
            log.warning("checking %d runs before release failed: %s; retrying", len(stale), exc)
            for job in batch:
                self.requeue(job, time.time() + 0.5)
            return
        for job in batch:
            if job.id in moved:
                self.not_started(job, moved[job.id])
                self.forget(job)
        batch = [j for j in batch if j.id not in moved and not await self.skipped(j)]
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
                results = await self.proposals.propose([j.id for j in group], state)
            except httpx.HTTPError as exc:
                log.warning("starting %d runs failed: %s; they are retried", len(group), exc)
                for job in group:
                    self.requeue(job, time.time() + 1.0)
                continue
            for job in group:
                result = results.get(job.id)
                if result is not None and self.proposals.won(result, state):
                    await self.jobs.run(job)
                elif result is not None and result["status"] == "WAIT":
                    delay = float(result["details"].get("delay_seconds") or 1)
                    self.requeue(job, time.time() + delay)
                else:
                    reason = (result or {}).get("details", {}).get("reason") or "the run is gone"
                    log.info("not starting %s: %s", job.id, reason)
                    self.forget(job)

    async def skipped(self, job: Job) -> bool:
        """End a first attempt that starts too late for its task's misfire policy or late limit.

        The same decision as the process lane's (``taskscheduler.misfire``), taken at release,
        when the lateness is known, with the misfire policy judged as of the claim: the run ends
        Cancelled, named Skipped, with the reason.
        Only a late run costs a call (to count the task's newer due ticks).
        """
        if job.attempt > 1 or not job.run.get("expected_start_time"):
            return False
        policy = job.params.misfire
        # A late limit of 0 is no limit here, as the fast lane has always read it.
        late_limit = job.params.late_limit_delta if job.params.late_limit else None
        expected = _api.epoch(job.run["expected_start_time"])
        lateness = dt.timedelta(seconds=time.time() - expected)
        if not misfire.needs_check(policy, late_limit, lateness):
            return False
        auto = bool(job.run.get("auto_scheduled"))
        try:
            newer = await self.claims.api.newer_ticks_due(job.run, job.claimed) if auto else 0
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
        self.reporter.log(job.id, logging.INFO, WORKER_LOGGER, f"Skipped: {reason}")
        self.reporter.final(
            job.id, {"type": "CANCELLED", "name": misfire.SKIPPED, "message": reason}
        )
        self.children.release(job)
        return True
