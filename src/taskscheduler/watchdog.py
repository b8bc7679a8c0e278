"""The watchdog: the platform service for what Prefect's open-source server does not do.

``python -m taskscheduler.watchdog`` (started by ``up``), every ``TASKS_WATCHDOG_INTERVAL``:

1. **Crash retries.** A job's retries are Prefect task retries *inside* its flow run, so a job
   whose process died (marked Crashed by the zombie automation, or by its worker) would never
   be retried. The watchdog puts a Crashed job of a task with retries left back to
   ``AwaitingRetry`` (a Scheduled state) after the task's retry delay, doubling per crash:
   the *same* flow run runs again, so the job keeps its id, its timeline shows every attempt,
   and no second job can appear. A job is retried after at most ``retries`` crashes; a job
   that crashed before its code started (run count 0) is always retried, up to three times,
   since running it cannot duplicate anything.
   Why a service and not an automation: an automation cannot count attempts, so it would
   retry forever or never.
2. **Stuck in Pending.** A job claimed by a worker that then died, or whose process could not
   reach the server to start (the server was down), stays Pending for good: Prefect has no
   bound on it. Pending longer than ``TASKS_PENDING_TIMEOUT`` (10 min) — against seconds for a
   live worker, whose fast lane holds a run at most its look-ahead — it is marked Crashed
   ("stuck in Pending"), and rule 1 runs it again (its code never started: run count 0). The
   bound is what keeps this from running a job twice: only a process that took longer than it
   to start its code could still do so.
3. **SLA.** A running job of a task with ``max_runtime`` that has run longer emits the event
   ``taskscheduler.job.sla-exceeded`` (once: its id is derived from the job's), which the
   notification automations pick up.

Everything it decides is read from Prefect each round and every action is idempotent, so a
restart, or two watchdogs at once, change nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import signal
import uuid
from typing import Any

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas import filters, objects, sorting
from prefect.events import Event
from prefect.events.clients import get_events_client
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL
from prefect.states import AwaitingRetry, Crashed

from taskscheduler import notifications
from taskscheduler.reliability import ReliabilitySettings, get_reliability_settings

log = logging.getLogger("taskscheduler.watchdog")

FLOW_NAME = "run-task"
LOOKBACK = dt.timedelta(hours=1)
PAGE = 200
# Crash retries of a job that never started its code (not counted against its retries).
INFRA_RETRIES = 3
CRASH_RETRY_MESSAGE = "Retry {n} of {retries} after a crash (the watchdog)"
STUCK_MESSAGE = "Stuck in Pending for {seconds:.0f}s: its worker never started it (the watchdog)"
_EVENT_NAMESPACE = uuid.UUID("0f6c3f55-1c71-4c43-9d1f-6f7a43f3bd1e")


class Watchdog:
    """One round at a time: crash retries, then SLA checks."""

    def __init__(self, api_url: str, settings: ReliabilitySettings | None = None) -> None:
        self.api_url = api_url
        self.settings = settings or get_reliability_settings()
        self.retried = 0
        self.unstuck = 0
        self.sla_events = 0

    def _client(self) -> PrefectClient:
        return PrefectClient(self.api_url, auth_string=PREFECT_API_AUTH_STRING.value())

    async def setup(self) -> None:
        """Create what the platform relies on: the zombie automation, global routes, canary."""
        async with PrefectClient(
            self.api_url, auth_string=PREFECT_API_AUTH_STRING.value()
        ) as client:
            await notifications.ensure_platform_automations(
                client, self.settings.zombie_after, self.settings.notify
            )
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
            except Exception:
                log.exception("watchdog round failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.watchdog_interval)

    async def round(self) -> None:
        """One pass over crashed and running jobs."""
        async with PrefectClient(
            self.api_url, auth_string=PREFECT_API_AUTH_STRING.value()
        ) as client:
            await self.crash_stuck_pending(client)
            await self.retry_crashed(client)
            await self.check_sla(client)

    async def crash_stuck_pending(self, client: PrefectClient) -> int:
        """Mark Crashed the jobs Pending for longer than the pending timeout; return how many."""
        timeout = self.settings.pending_timeout
        if not timeout:
            return 0
        now = dt.datetime.now(dt.UTC)
        runs = await _jobs_in(
            client,
            objects.StateType.PENDING,
            # A retry keeps its first expected time, so this only narrows the read; the state's
            # own timestamp decides.
            expected_start_time=filters.FlowRunFilterExpectedStartTime(before_=now - timeout),
        )
        count = 0
        for run in runs:
            if not stuck_pending(run, now, timeout):
                continue
            assert run.state is not None
            waited = (now - run.state.timestamp).total_seconds()
            state: objects.State = Crashed(message=STUCK_MESSAGE.format(seconds=waited))
            result = await client.set_flow_run_state(run.id, state)
            if result.status.value == "ACCEPT":
                count += 1
                log.warning("job %s stuck in Pending for %.0fs: marked Crashed", run.id, waited)
        self.unstuck += count
        return count

    async def retry_crashed(self, client: PrefectClient) -> int:
        """Schedule crashed jobs with crash retries left again; return how many."""
        now = dt.datetime.now(dt.UTC)
        runs = await _jobs_in(
            client,
            objects.StateType.CRASHED,
            sort=sorting.FlowRunSort.END_TIME_DESC,
            end_time=filters.FlowRunFilterEndTime(after_=now - LOOKBACK),
        )
        count = 0
        for run in runs:
            # A job that never reached Running never ran user code: running it again cannot
            # duplicate anything, whatever its retries (a worker or server dying between the
            # claim and the start). Otherwise the task's retries bound the crash retries.
            never_started = run.run_count == 0
            retries = INFRA_RETRIES if never_started else int(run.parameters.get("retries") or 0)
            if retries <= 0 or run.deployment_id is None:
                continue
            states = await client.read_flow_run_states(run.id)
            crashes = sum(1 for s in states if s.type is objects.StateType.CRASHED)
            if crashes > retries:
                continue
            delay = (
                0.0
                if never_started
                else float(run.parameters.get("retry_delay") or 0) * 2 ** (crashes - 1)
            )
            state: objects.State = AwaitingRetry(
                scheduled_time=now + dt.timedelta(seconds=delay),
                message=CRASH_RETRY_MESSAGE.format(n=crashes, retries=retries),
            )
            result = await client.set_flow_run_state(run.id, state, force=True)
            if result.status.value == "ACCEPT":
                count += 1
                log.info(
                    "job %s crashed (%d/%d): retrying in %.0fs", run.id, crashes, retries, delay
                )
        self.retried += count
        return count

    async def check_sla(self, client: PrefectClient) -> int:
        """Emit one SLA event per running job past its task's ``max_runtime``."""
        now = dt.datetime.now(dt.UTC)
        runs = await _jobs_in(client, objects.StateType.RUNNING)
        late = [r for r in runs if _over_sla(r, now)]
        if not late:
            return 0
        names = await _deployment_names(client, {r.deployment_id for r in late if r.deployment_id})
        async with get_events_client() as events:
            for run in late:
                await events.emit(sla_event(run, names.get(run.deployment_id), now))
        self.sla_events += len(late)
        return len(late)


CANARY = "tasks-canary"
CANARY_CODE = 'def main():\n    return "ok"\n'


async def ensure_canary(every: dt.timedelta | None) -> None:
    """The canary task: a no-op every ``every``, whose start delays the metrics report."""
    from taskscheduler import errors
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


async def _jobs_in(
    client: PrefectClient,
    state_type: objects.StateType,
    *,
    sort: sorting.FlowRunSort | None = None,
    **narrow: Any,
) -> list[objects.FlowRun]:
    """Up to a page of jobs (runs of the generic flow) in ``state_type``, narrowed further."""
    return await client.read_flow_runs(
        flow_filter=filters.FlowFilter(name=filters.FlowFilterName(any_=[FLOW_NAME])),
        flow_run_filter=filters.FlowRunFilter(
            state=filters.FlowRunFilterState(
                type=filters.FlowRunFilterStateType(any_=[state_type])
            ),
            **narrow,
        ),
        sort=sort,
        limit=PAGE,
    )


def stuck_pending(run: objects.FlowRun, now: dt.datetime, timeout: dt.timedelta) -> bool:
    """Whether ``run`` has been Pending for longer than ``timeout``."""
    state = run.state
    return (
        state is not None
        and state.type is objects.StateType.PENDING
        and now - state.timestamp > timeout
    )


def _over_sla(run: objects.FlowRun, now: dt.datetime) -> bool:
    limit = run.parameters.get("max_runtime")
    if not limit or run.start_time is None:
        return False
    return (now - run.start_time).total_seconds() > float(limit)


async def _deployment_names(client: PrefectClient, ids: set[uuid.UUID]) -> dict[Any, str]:
    found = await client.read_deployments(
        deployment_filter=filters.DeploymentFilter(id=filters.DeploymentFilterId(any_=list(ids)))
    )
    return {d.id: d.name for d in found}


def sla_event(run: objects.FlowRun, deployment: str | None, now: dt.datetime) -> Event:
    """The SLA event of a job; its id depends only on the job, so it counts once."""
    assert run.start_time is not None
    limit = float(run.parameters.get("max_runtime") or 0)
    running = (now - run.start_time).total_seconds()
    related = [
        {
            "prefect.resource.id": f"prefect.flow.{run.flow_id}",
            "prefect.resource.role": "flow",
            "prefect.resource.name": FLOW_NAME,
        },
        *(
            [
                {
                    "prefect.resource.id": f"prefect.deployment.{run.deployment_id}",
                    "prefect.resource.role": "deployment",
                    "prefect.resource.name": deployment or "",
                }
            ]
            if run.deployment_id
            else []
        ),
        *(
            {"prefect.resource.id": f"prefect.tag.{t}", "prefect.resource.role": "tag"}
            for t in run.tags
        ),
    ]
    return Event(
        id=uuid.uuid5(_EVENT_NAMESPACE, f"sla:{run.id}"),
        occurred=now,
        event=notifications.SLA_EVENT,
        resource={
            "prefect.resource.id": f"prefect.flow-run.{run.id}",
            "prefect.resource.name": run.name,
        },
        related=related,
        payload={
            "summary": "running longer than its SLA",
            "reason": f"running for {running:.0f}s, over the task's max_runtime of {limit:g}s",
            "max_runtime": limit,
        },
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m taskscheduler.watchdog``: run until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m taskscheduler.watchdog")
    parser.add_argument("--api-url", default=None, help="Prefect API (default PREFECT_API_URL).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    api_url = args.api_url or PREFECT_API_URL.value()
    if not api_url:
        parser.error("no Prefect API: set PREFECT_API_URL or --api-url")

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("watchdog watching %s", api_url)
        await Watchdog(api_url).run(stop)

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
