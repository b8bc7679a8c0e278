"""Whether a job that starts late still runs: the task's misfire policy and late limit.

The decision is taken by the job itself when it starts (``execution.run_job``), because only
then is it known how late it really is, and because a job that decides about itself cannot
race with a worker claiming it: a platform service cancelling "late" runs could cancel one the
worker has just started. The price is one process start for a skipped job. A skipped job ends
Cancelled, with a state named ``Skipped`` and the reason as its message.

The misfire policy judges the job as it was when a worker *picked it up* (its Pending state),
not when its code starts: starting takes seconds on the process lane, and judged at the start,
a task whose interval is shorter than that would see its next tick due every time and skip every
tick. Picked up on time, a tick is never a misfire; the late limit alone bounds the start.

No Prefect import here: the caller supplies the facts.
"""

from __future__ import annotations

import datetime as dt

from taskscheduler import models

SKIPPED = "Skipped"
# Jobs later than this are looked at at all; anything earlier is on time for every policy.
CHECK_AFTER = dt.timedelta(milliseconds=500)


def needs_check(
    policy: models.MisfirePolicy,
    late_limit: dt.timedelta | None,
    lateness: dt.timedelta,
) -> bool:
    """Whether the job must look further (count newer due ticks) before running."""
    if lateness <= CHECK_AFTER:
        return False
    return late_limit is not None or policy is not models.MisfirePolicy.ALL


def skip_reason(
    *,
    policy: models.MisfirePolicy,
    late_limit: dt.timedelta | None,
    lateness: dt.timedelta,
    picked_up_late: dt.timedelta,
    auto_scheduled: bool,
    newer_due: int,
    grace: dt.timedelta,
) -> str | None:
    """Why the job must not run, or None when it runs.

    ``lateness`` is how late the job starts, ``picked_up_late`` how late a worker took it, and
    ``newer_due`` counts the task's later ticks already due then: a tick with newer due ticks
    when it was picked up has been *overtaken* (missed). The late limit applies to every job;
    the misfire policy only to schedule ticks (a job asked for by hand is never a misfire).
    """
    late = lateness.total_seconds()
    if late_limit is not None and lateness > late_limit:
        return (
            f"started {late:.1f}s late, beyond the task's late limit of "
            f"{late_limit.total_seconds():g}s"
        )
    if not auto_scheduled or policy is models.MisfirePolicy.ALL:
        return None
    picked = picked_up_late.total_seconds()
    if newer_due > 0:
        return (
            f"missed tick (picked up {picked:.1f}s late, {newer_due} later tick(s) already "
            f"due): misfire policy {policy.value!r}"
        )
    if policy is models.MisfirePolicy.SKIP and picked_up_late > grace:
        return (
            f"missed tick (picked up {picked:.1f}s late, beyond the misfire grace of "
            f"{grace.total_seconds():g}s): misfire policy 'skip'"
        )
    return None
