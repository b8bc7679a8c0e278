"""The watchdog: the platform service for what Prefect's open-source server does not do.

``python -m taskscheduler.services.watchdog`` (started by ``up``), every
``TASKS_WATCHDOG_INTERVAL``:

1. **Silent jobs.** A running job with neither its Running state nor a heartbeat in the last
   ``TASKS_ZOMBIE_AFTER`` — its process died, and with it whoever would have reported the end
   — is marked Crashed. The rule of Prefect's "detect zombie flows" automation, read from the
   flow runs and the persisted heartbeat events in one query a round
   (``_prefect.server.silence``) instead of a locked transaction per event of every job.
2. **Stuck in Pending.** A job claimed by a worker that then died, or whose process could not
   reach the server to start (the server was down), stays Pending for good: Prefect has no
   bound on it. Pending longer than ``TASKS_PENDING_TIMEOUT`` (10 min) — against seconds for a
   live worker, whose fast lane holds a run at most its look-ahead — it is marked Crashed
   ("stuck in Pending"), and rule 3 runs it again (its code never started: run count 0). The
   bound is what keeps this from running a job twice: only a process that took longer than it
   to start its code could still do so.
3. **Crash retries.** A job's retries are Prefect task retries *inside* its flow run, so a job
   whose process died (marked Crashed by rule 1 or 2, or by its worker) would never be
   retried. The watchdog puts a Crashed job of a task with retries left back to
   ``AwaitingRetry`` (a Scheduled state) after the task's retry delay, doubling per crash:
   the *same* flow run runs again, so the job keeps its id, its timeline shows every attempt,
   and no second job can appear. A job is retried after at most ``retries`` crashes; a job
   that crashed before its code started (run count 0) is always retried, up to three times,
   since running it cannot duplicate anything.
   Why a service and not an automation: an automation cannot count attempts, so it would
   retry forever or never.
4. **SLA.** A running job of a task with ``max_runtime`` that has run longer emits the event
   ``taskscheduler.job.sla-exceeded`` (once: its id is derived from the job's), which the
   notification automations pick up.

Everything it decides is read from Prefect each round and every action is idempotent, so a
restart, or two watchdogs at once, change nothing. It writes the time of each round that
went through to ``--ready-file``: the platform counts it up once the first one has.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
from pathlib import Path

from taskscheduler import errors
from taskscheduler._prefect.runbook import RunBook, RunFacts, Session
from taskscheduler.reliability import ReliabilitySettings, get_reliability_settings
from taskscheduler.settings import DEFAULT_API_URL

log = logging.getLogger("taskscheduler.services.watchdog")

LOOKBACK = dt.timedelta(hours=1)
# Crash retries of a job that never started its code (not counted against its retries).
INFRA_RETRIES = 3
CRASH_RETRY_MESSAGE = "Retry {n} of {retries} after a crash (the watchdog)"
STUCK_MESSAGE = "Stuck in Pending for {seconds:.0f}s: its worker never started it (the watchdog)"
SILENT_MESSAGE = "No heartbeat for {seconds:g}s: the job's process died (the watchdog)"


class Watchdog:
    """One round at a time: silent and stuck jobs crashed, crash retries, then SLA checks."""

    def __init__(
        self,
        api_url: str,
        settings: ReliabilitySettings | None = None,
        ready_file: Path | None = None,
    ) -> None:
        self.runbook = RunBook(api_url)
        self.settings = settings or get_reliability_settings()
        self.ready_file = ready_file
        self.silenced = 0
        self.retried = 0
        self.unstuck = 0
        self.sla_events = 0

    async def setup(self) -> None:
        """Create what the platform relies on: the global notification routes, the canary."""
        async with self.runbook.session() as session:
            await session.ensure_platform_automations(self.settings.notify)
        await ensure_canary(self.settings.canary_every)

    async def run(self, stop: asyncio.Event) -> None:
        """Run rounds until ``stop`` is set; a failed round is logged and the next one tried."""
        while not stop.is_set():
            try:
                await self.setup()
                break
            except Exception:
                log.exception("watchdog set-up failed; retrying")
                await asyncio.sleep(self.settings.watchdog_interval)
        while not stop.is_set():
            try:
                await self.round()
                if self.ready_file is not None:
                    write_atomically(self.ready_file, dt.datetime.now(dt.UTC).isoformat())
            except Exception:
                log.exception("watchdog round failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.watchdog_interval)

    async def round(self) -> None:
        """One pass over running, pending and crashed jobs."""
        async with self.runbook.session() as session:
            await self.crash_silent(session)
            await self.crash_stuck_pending(session)
            await self.retry_crashed(session)
            await self.check_sla(session)

    async def crash_silent(self, session: Session) -> int:
        """Mark Crashed the running jobs silent for ``zombie_after``; return how many."""
        after = self.settings.zombie_after
        count = 0
        for run_id in await session.silent_since(dt.datetime.now(dt.UTC) - after):
            if await session.crash(run_id, SILENT_MESSAGE.format(seconds=after.total_seconds())):
                count += 1
                log.warning("job %s silent for %gs: marked Crashed", run_id, after.total_seconds())
        self.silenced += count
        return count

    async def crash_stuck_pending(self, session: Session) -> int:
        """Mark Crashed the jobs Pending for longer than the pending timeout; return how many."""
        timeout = self.settings.pending_timeout
        if not timeout:
            return 0
        now = dt.datetime.now(dt.UTC)
        count = 0
        for run in await session.pending_since_before(now - timeout):
            if not stuck_pending(run, now, timeout) or run.state_since is None:
                continue
            waited = (now - run.state_since).total_seconds()
            if await session.crash(run.id, STUCK_MESSAGE.format(seconds=waited)):
                count += 1
                log.warning("job %s stuck in Pending for %.0fs: marked Crashed", run.id, waited)
        self.unstuck += count
        return count

    async def retry_crashed(self, session: Session) -> int:
        """Schedule crashed jobs with crash retries left again; return how many."""
        now = dt.datetime.now(dt.UTC)
        count = 0
        for run in await session.crashed_since(now - LOOKBACK):
            allowed = crash_retries(run)
            if not allowed or run.deployment_id is None:
                continue
            crashes = await session.crashes(run.id)
            if crashes > allowed:
                continue
            delay = crash_retry_delay(run, crashes)
            message = CRASH_RETRY_MESSAGE.format(n=crashes, retries=allowed)
            if await session.retry(run.id, now + dt.timedelta(seconds=delay), message):
                count += 1
                log.info(
                    "job %s crashed (%d/%d): retrying in %.0fs", run.id, crashes, allowed, delay
                )
        self.retried += count
        return count

    async def check_sla(self, session: Session) -> int:
        """Emit one SLA event per running job past its task's ``max_runtime``."""
        now = dt.datetime.now(dt.UTC)
        late = [(run, reason) for run in await session.running() if (reason := over_sla(run, now))]
        if not late:
            return 0
        names = await session.deployment_names(
            {run.deployment_id for run, _ in late if run.deployment_id}
        )
        await session.emit_sla_events(
            [
                (run, names.get(run.deployment_id) if run.deployment_id else None, reason)
                for run, reason in late
            ]
        )
        self.sla_events += len(late)
        return len(late)


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path``'s content at once (a reader never sees half of it)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    partial.replace(path)


def stuck_pending(run: RunFacts, now: dt.datetime, timeout: dt.timedelta) -> bool:
    """Whether ``run`` has been Pending for longer than ``timeout``."""
    return (
        run.state_type == "PENDING"
        and run.state_since is not None
        and now - run.state_since > timeout
    )


def crash_retries(run: RunFacts) -> int:
    """How many crashes of this job may be retried.

    A job that never reached Running never ran user code: running it again cannot duplicate
    anything, whatever its retries (a worker or server dying between the claim and the start).
    Otherwise the task's retries bound the crash retries.
    """
    if run.run_count == 0:
        return INFRA_RETRIES
    return run.job.retries if run.job is not None else 0


def crash_retry_delay(run: RunFacts, crashes: int) -> float:
    """Seconds before the retry after the ``crashes``-th crash: none for a job that never
    started, else the task's backoff (``policy.RetryPolicy``)."""
    if run.run_count == 0 or run.job is None:
        return 0.0
    return run.job.retry.backoff(crashes)


def over_sla(run: RunFacts, now: dt.datetime) -> str | None:
    """Why a running job is over its task's ``max_runtime``, or None."""
    limit = run.job.max_runtime if run.job is not None else None
    if not limit or run.start_time is None:
        return None
    running = (now - run.start_time).total_seconds()
    if running <= limit:
        return None
    return f"running for {running:.0f}s, over the task's max_runtime of {limit:g}s"


CANARY = "tasks-canary"
CANARY_CODE = 'def main():\n    return "ok"\n'


async def ensure_canary(every: dt.timedelta | None) -> None:
    """The canary task: a no-op every ``every``, whose start delays the metrics report."""
    from taskscheduler.sdk import AsyncTaskScheduler

    scheduler = AsyncTaskScheduler()
    try:
        try:
            task = await scheduler.get(CANARY)
        except errors.TaskNotFound:
            task = None
        if not every or every.total_seconds() <= 0:
            if task is not None:
                await scheduler.delete(CANARY)
            return
        spec = {
            "name": CANARY,
            "code": CANARY_CODE,
            "every": every.total_seconds(),
            "description": "Measures end-to-end scheduling delay (taskscheduler_canary_*).",
            "tags": ["canary"],
        }
        if task is None:
            await scheduler.create(spec)
        elif task.spec is not None and task.spec.every != every:
            await scheduler.update(CANARY, {"every": every.total_seconds()})
    finally:
        await scheduler.aclose()


def main(argv: list[str] | None = None) -> int:
    """``python -m taskscheduler.services.watchdog``: run until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m taskscheduler.services.watchdog")
    parser.add_argument("--api-url", default=None, help="Prefect API (default PREFECT_API_URL).")
    parser.add_argument(
        "--ready-file", type=Path, default=None, help="Written with the time of each round."
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    api_url = args.api_url or os.environ.get("PREFECT_API_URL") or DEFAULT_API_URL

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("watchdog watching %s", api_url)
        await Watchdog(api_url, ready_file=args.ready_file).run(stop)

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
