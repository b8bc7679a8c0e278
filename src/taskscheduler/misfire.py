"""Whether a job that starts late still runs: the task's misfire policy and late limit.

The decision is taken by the job itself when it starts (``execution.run_job``), because only
then is it known how late it really is, and because a job that decides about itself cannot
race with a worker claiming it: a platform service cancelling "late" runs could cancel one the
worker has just started. The price is one process start for a skipped job. A skipped job ends
Cancelled, with a state named ``Skipped`` and the reason as its message.

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
    auto_scheduled: bool,
    newer_due: int,
    grace: dt.timedelta,
) -> str | None:
    """Why the job must not run, or None when it runs.

    ``newer_due`` counts the task's later ticks that are already due: a tick with newer due
    ticks has been *overtaken* (missed). The late limit applies to every job; the misfire
    policy only to schedule ticks (a job asked for by hand is never a misfire).
    """
    late = lateness.total_seconds()
    if late_limit is not None and lateness > late_limit:
        return (
            f"started {late:.1f}s late, beyond the task's late limit of "
            f"{late_limit.total_seconds():g}s"
        )
    if not auto_scheduled or policy is models.MisfirePolicy.ALL:
        return None
    if newer_due > 0:
        return (
            f"missed tick ({late:.1f}s late, {newer_due} later tick(s) already due): "
            f"misfire policy {policy.value!r}"
        )
    if policy is models.MisfirePolicy.SKIP and lateness > grace:
        return (
            f"missed tick ({late:.1f}s late, beyond the misfire grace of "
            f"{grace.total_seconds():g}s): misfire policy 'skip'"
        )
    return None
