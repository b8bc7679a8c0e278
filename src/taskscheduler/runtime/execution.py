"""Running a job inside its flow run: load the task's code, then call it as a Prefect task.

The user's function becomes a Prefect task so that Prefect's own machinery gives it retries
with exponential backoff and jitter (visible as AwaitingRetry/Retrying states), a timeout per
attempt, and ``print`` output in the run's logs. Exceptions from user code propagate, so
Prefect marks the job failed with the traceback in its logs.

Secrets reach the code as environment variables: the task names Prefect Secret blocks
(``{"DB_PASSWORD": "db-password"}``), the flow run's parameters carry only those names, and
``secret_environment`` reads the values when the job starts, sets them for the duration of the
call and removes them afterwards. Environment variables are what most libraries already read
(and need no change to the user's function signature); while they are set, every log record
of the process has the values replaced by ``***``, so a ``print`` of a secret does not reach
Prefect's logs either.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

from prefect import get_run_logger
from prefect import task as prefect_task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.logging.handlers import APILogHandler
from prefect.states import Cancelled

from taskscheduler import misfire, models
from taskscheduler._prefect.blocks import TaskCode
from taskscheduler.policy import JobParameters
from taskscheduler.reliability import get_reliability_settings
from taskscheduler.runtime import redaction
from taskscheduler.runtime.loading import (
    MAX_RESULT_CHARS,
    UserRecords,
    load_entrypoint,
    load_inline,
    secret_values_environment,
    synchronous,
)


def run_job(job: JobParameters) -> Any:
    """Run the task's function once, with its retry and timeout policy; return its result.

    A job that starts too late for its task's misfire policy or late limit runs no code and
    returns a Cancelled state named ``Skipped`` (which Prefect makes the job's final state).
    """
    logger = get_run_logger()
    skipped = misfire_skip(job.misfire, job.late_limit_delta)
    if skipped is not None:
        logger.warning("Skipped: %s", skipped.message)
        return skipped
    if job.code is not None:
        block = cast(TaskCode, TaskCode.load(job.code))  # sync: we are not in an event loop
        logger.info("Running %s version %d (sha256 %s)", job.task, block.version, block.sha256[:12])
        function = load_inline(block.source or "", block.entry, name=job.code)
    elif job.entrypoint is not None:
        logger.info("Running %s from %s", job.task, job.entrypoint)
        function = load_entrypoint(job.entrypoint)
    else:
        raise ValueError("a job needs either code or an entrypoint")
    retry = job.retry
    attempt = prefect_task(  # type: ignore[call-overload]
        synchronous(function),
        name=job.task,
        retries=retry.retries,
        retry_delay_seconds=retry.backoffs() or 0,
        retry_jitter_factor=retry.jitter or None,
        timeout_seconds=job.timeout,
        log_prints=True,
        persist_result=False,
        cache_policy=NO_CACHE,
    )
    try:
        with secret_environment(job.secrets or {}) as redact, _user_logs_to_prefect():
            # The job's final state shows an error's message: it must not carry a secret.
            with redaction.redacted_errors(redact):
                result = attempt(**job.parameters)
            logger.info("Result: %s", repr(result)[:MAX_RESULT_CHARS])
    finally:
        # Send the job's output before its final state is set, so that whoever sees the job
        # ended also finds all its logs.
        APILogHandler().flush()
    return result


def misfire_skip(policy: models.MisfirePolicy, limit: dt.timedelta | None) -> State | None:
    """The Skipped state this flow run must end in, or None when it runs (see ``misfire``)."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    run = context.flow_run if context else None
    if run is None or run.expected_start_time is None:
        return None
    misfire_policy = policy
    started = dt.datetime.now(dt.UTC)
    lateness = started - run.expected_start_time
    if not misfire.needs_check(misfire_policy, limit, lateness):
        return None
    picked_up, newer_due = started, 0
    policy_applies = run.auto_scheduled and misfire_policy is not models.MisfirePolicy.ALL
    if policy_applies and run.deployment_id is not None:
        picked_up, newer_due = _picked_up(started)
    reason = misfire.skip_reason(
        policy=misfire_policy,
        late_limit=limit,
        lateness=lateness,
        picked_up_late=picked_up - run.expected_start_time,
        auto_scheduled=run.auto_scheduled,
        newer_due=newer_due,
        grace=get_reliability_settings().misfire_grace,
    )
    return Cancelled(name=misfire.SKIPPED, message=reason) if reason else None


def _picked_up(started: dt.datetime) -> tuple[dt.datetime, int]:
    """When a worker took the run (its last Pending state, else now) and how many later
    schedule ticks of the same task were already due then.

    The job gateway answers this for the job's own run (``/_gate/misfire``): a job may not
    read other runs, even of its own task.
    """
    import httpx
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL

    user, _, password = (PREFECT_API_AUTH_STRING.value() or "").partition(":")
    response = httpx.get(
        f"{PREFECT_API_URL.value()}/_gate/misfire",
        params={"started": started.isoformat()},
        auth=(user, password),
        timeout=30,
    )
    response.raise_for_status()
    facts = response.json()
    picked_up = dt.datetime.fromisoformat(facts["picked_up"])
    return min(picked_up, started), int(facts["newer_due"])


@contextmanager
def secret_environment(secrets: Mapping[str, str]) -> Iterator[redaction.Redact]:
    """Set each ``NAME`` to the value of its Secret block; redact the values from all logs.

    Yields a function that redacts the values from any text.
    """
    if not secrets:
        yield redaction.unchanged
        return
    from prefect.blocks.system import Secret

    values: dict[str, str] = {}
    for env, block in secrets.items():
        secret = Secret.load(block)  # a block, not a coroutine: this runs outside an event loop
        assert isinstance(secret, Secret)
        values[env] = str(secret.get())
    with secret_values_environment(values) as redact:
        yield redact


@contextmanager
def _user_logs_to_prefect() -> Iterator[None]:
    """Send what user code logs with the standard ``logging`` module to the run's logs."""
    root = logging.getLogger()
    handler = APILogHandler(level=logging.INFO)
    handler.addFilter(UserRecords())
    previous = root.level
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
