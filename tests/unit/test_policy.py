"""The job contract: the parameters a deployment stores, read back the same by every lane."""

from __future__ import annotations

import random

from taskscheduler import models
from taskscheduler.policy import JobParameters, RetryPolicy


def spec(**changes: object) -> models.TaskSpec:
    return models.build_spec(
        {"name": "greet", "code": "def main(who='x'):\n    return who\n", **changes}
    )


def test_a_task_without_the_newer_policy_fields_keeps_its_parameters_exactly() -> None:
    stored = JobParameters.of(spec(parameters={"who": "ada"}, retries=2), 3).as_flow_parameters()
    assert stored == {
        "task": "greet",
        "code": "greet-v3",
        "entrypoint": None,
        "entry": "main",
        "parameters": {"who": "ada"},
        "retries": 2,
        "retry_delay": 10.0,
        "retry_jitter": 0.2,
        "timeout": None,
        "secrets": None,
    }


def test_the_newer_fields_appear_only_when_set_and_read_back_typed() -> None:
    stored = JobParameters.of(
        spec(misfire="latest", late_limit="5m", max_runtime="1h", timeout="30s"), 1
    ).as_flow_parameters()
    assert (stored["misfire"], stored["late_limit"], stored["max_runtime"]) == ("latest", 300, 3600)
    read = JobParameters.read(stored)
    assert read is not None
    assert read.misfire is models.MisfirePolicy.LATEST
    assert read.late_limit_delta is not None and read.late_limit_delta.total_seconds() == 300
    assert (read.timeout, read.version) == (30.0, 1)


def test_a_tasks_zone_is_stored_unless_it_is_utc() -> None:
    zoned = JobParameters.of(spec(timezone="Europe/Paris", cron="0 9 * * *"), 1)
    assert zoned.as_flow_parameters()["timezone"] == "Europe/Paris"
    assert "timezone" not in JobParameters.of(spec(), 1).as_flow_parameters()


def test_a_run_of_another_flow_is_not_ours_and_unknown_keys_are_ignored() -> None:
    assert JobParameters.read({"name": "x"}) is None
    read = JobParameters.read({"task": "old", "retries": 1, "from_a_later_version": True})
    assert read is not None and read.retries == 1 and read.code is None and read.version is None


def test_every_lane_backs_off_the_same_way() -> None:
    policy = RetryPolicy(retries=3, delay=10, jitter=0.5)
    assert [policy.backoff(n) for n in (1, 2, 3)] == [10, 20, 40] == policy.backoffs()
    assert [policy.allows_another(n) for n in (1, 3, 4)] == [True, True, False]
    delays = [policy.next_delay(2, rng=random.Random(seed)) for seed in range(50)]
    assert all(20 <= d <= 30 for d in delays) and len(set(delays)) > 1
    assert RetryPolicy(retries=1, delay=10, jitter=0).next_delay(1) == 10


def test_the_generic_flow_takes_every_field_of_the_job_contract() -> None:
    """A field the deployment stores in a run's parameters that the flow does not take fails
    every job of the process and docker lanes (Prefect validates the call)."""
    import inspect

    from taskscheduler.runtime.flow import run_task

    taken = set(inspect.signature(run_task.fn).parameters)
    assert taken == set(JobParameters.model_fields)
