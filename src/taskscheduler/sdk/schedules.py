"""Schedule operations of the SDK: pause and resume a task's schedule, add a one-off job, and
the time rules every new job obeys (not in the past, not outside the task's window)."""

from __future__ import annotations

import datetime as dt

from taskscheduler import errors, models
from taskscheduler.sdk.core import SchedulerCore, audited, now

PAST_GRACE = dt.timedelta(minutes=5)


class ScheduleOperations(SchedulerCore):
    """When a task's jobs run (part of ``AsyncTaskScheduler``)."""

    @audited("task.pause")
    async def pause(self, name: str) -> models.Task:
        """Stop the task's schedule; waiting auto-scheduled jobs are removed."""
        gw = self._gateway
        async with gw.session() as session:
            deployment = await gw.find_deployment(session, name)
            await gw.pause(session, deployment.id)
            return await self._read_task(session, name, detail=True)

    @audited("task.resume")
    async def resume(self, name: str) -> models.Task:
        """Restart the task's schedule from now on (missed ticks are not run)."""
        gw = self._gateway
        async with gw.session() as session:
            deployment = await gw.find_deployment(session, name)
            await gw.resume(session, deployment.id)
            if deployment.scheduled:
                await gw.schedule_now(session, deployment.id, now())
            return await self._read_task(session, name, detail=True)

    @audited("task.schedule")
    async def schedule(self, name: str, at: dt.datetime) -> models.Job:
        """Add a one-off job of a task at ``at``."""
        gw = self._gateway
        async with gw.session() as session:
            deployment = await gw.find_deployment(session, name)
            self.grants.check_task_pool(name, deployment.pool)
            spec = await self._definition(session, deployment)
            at = sane_when(at)
            refuse_outside_window(spec, at, field="at")
            return await gw.create_run(session, deployment, at=at, parameters=None)


def since(spec: models.TaskSpec, when: dt.datetime) -> dt.datetime:
    """From when to create runs now: a one-off a little in the past still gets its run."""
    return min(spec.at, when) if spec.at is not None else when


def refuse_past_at(spec: models.TaskSpec, when: dt.datetime) -> None:
    """Refuse a one-off task whose time has passed (beyond a few minutes' grace)."""
    if spec.at is not None and spec.at < when - PAST_GRACE:
        raise errors.InvalidSchedule("at", f"{spec.at.isoformat()} is in the past")


def sane_when(at: dt.datetime) -> dt.datetime:
    """A job time in UTC when it has no zone; refused when far off or minutes in the past."""
    at = at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
    models.check_time(at, "at")
    if at < now() - PAST_GRACE:
        raise errors.InvalidSchedule("at", f"{at.isoformat()} is in the past")
    return at


def refuse_outside_window(spec: models.TaskSpec | None, when: dt.datetime, *, field: str) -> None:
    """No job of a task is ever created outside its start/end window."""
    if spec is None:
        return
    if spec.start is not None and when < spec.start:
        raise errors.InvalidSchedule(field, f"the task starts at {spec.start.isoformat()}")
    if spec.end is not None and when > spec.end:
        raise errors.InvalidSchedule(field, f"the task ended at {spec.end.isoformat()}")
