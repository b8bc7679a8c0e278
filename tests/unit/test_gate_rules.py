"""What a job may ask of the Prefect API: its own run's calls, nothing else."""

from __future__ import annotations

import uuid

import pytest

from taskscheduler.gate import rules

RUN = str(uuid.uuid4())
OTHER = str(uuid.uuid4())
DEPLOYMENT = str(uuid.uuid4())
FLOW = str(uuid.uuid4())
QUEUE = str(uuid.uuid4())
LEASE = str(uuid.uuid4())
OWN = rules.Own(
    run_id=RUN,
    flow_id=FLOW,
    deployment_id=DEPLOYMENT,
    code="greet-v3",
    secrets=frozenset({"db-password"}),
    lease_id=LEASE,
    work_pool="process",
    work_queue_id=QUEUE,
    block_ids=frozenset({"b1"}),
)


def decide(method: str, path: str, body: object = None, **query: str) -> rules.Verdict:
    return rules.decide(method, path, query, body, OWN)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/flow_runs/{RUN}"),
        ("PATCH", f"/flow_runs/{RUN}"),
        ("POST", f"/flow_runs/{RUN}/set_state"),
        ("PATCH", f"/flow_runs/{RUN}/labels"),
        ("GET", f"/deployments/{DEPLOYMENT}"),
        ("GET", f"/flows/{FLOW}"),
        ("GET", "/block_types/slug/task-code/block_documents/name/greet-v3"),
        ("GET", "/block_types/slug/secret/block_documents/name/db-password"),
        ("GET", "/block_types/slug/secret"),
        ("GET", "/work_pools/process"),
        ("GET", f"/work_queues/{QUEUE}"),
        ("POST", f"/v2/concurrency_limits/leases/{LEASE}/renew"),
        ("GET", "/admin/version"),
        ("GET", "/health"),
    ],
)
def test_a_job_may_make_its_own_runs_calls(method: str, path: str) -> None:
    assert decide(method, path).kind == "allow"


@pytest.mark.parametrize(
    ("method", "path", "why"),
    [
        ("GET", f"/flow_runs/{OTHER}", "another flow run"),
        ("POST", f"/flow_runs/{OTHER}/set_state", "another flow run"),
        ("DELETE", f"/flow_runs/{RUN}", "DELETE on its flow run"),
        ("GET", f"/deployments/{uuid.uuid4()}", "another deployment"),
        ("POST", "/deployments/filter", "not a call of a job's own run"),
        ("GET", f"/flows/{uuid.uuid4()}", "another flow"),
        ("GET", "/block_types/slug/task-code/block_documents/name/other-v1", "another code block"),
        ("GET", "/block_types/slug/secret/block_documents/name/admin-secret", "did not declare"),
        ("PATCH", "/block_types/slug/secret/block_documents/name/db-password", "PATCH on a block"),
        ("GET", "/block_types/slug/slack-webhook/block_documents/name/x", "a block of type"),
        ("POST", "/block_documents/filter", "not a call of a job's own run"),
        ("POST", "/variables/filter", "not a call of a job's own run"),
        ("GET", "/variables/name/x", "not a call of a job's own run"),
        ("POST", "/automations/", "not a call of a job's own run"),
        ("GET", "/work_pools/docker", "another work pool"),
        ("POST", "/work_pools/process/get_scheduled_flow_runs", "not a call of a job's own run"),
        ("GET", f"/work_queues/{uuid.uuid4()}", "another work queue"),
        ("POST", f"/v2/concurrency_limits/leases/{uuid.uuid4()}/renew", "another run's"),
        ("DELETE", f"/task_runs/{uuid.uuid4()}", "DELETE on a task run"),
    ],
)
def test_everything_else_is_refused_with_a_reason(method: str, path: str, why: str) -> None:
    verdict = decide(method, path)
    assert verdict.kind == "refuse"
    assert why in verdict.reason


def test_a_flow_run_filter_passes_only_when_it_names_the_jobs_own_run_alone() -> None:
    mine = {"flow_runs": {"id": {"any_": [RUN]}, "state": {"type": {"any_": ["PAUSED"]}}}}
    assert decide("POST", "/flow_runs/filter", mine).kind == "allow"
    for body in (
        {},
        {"flow_runs": {"id": {"any_": [RUN, OTHER]}}},
        {"flow_runs": {"id": {"not_any_": [RUN]}}},
        {"flow_runs": {"deployment_id": {"any_": [DEPLOYMENT]}}},
        None,
    ):
        assert decide("POST", "/flow_runs/filter", body).kind == "refuse", body


def test_logs_pass_only_when_every_line_is_the_jobs_own() -> None:
    assert decide("POST", "/logs/", [{"flow_run_id": RUN}, {"flow_run_id": RUN}]).kind == "allow"
    mixed = [{"flow_run_id": RUN}, {"flow_run_id": OTHER}]
    assert decide("POST", "/logs/", mixed).kind == "refuse"
    assert decide("POST", "/logs/", {"flow_run_id": RUN}).kind == "refuse"


def test_task_runs_are_created_for_its_own_run_and_otherwise_checked_by_owner() -> None:
    assert decide("POST", "/task_runs/", {"flow_run_id": RUN}).kind == "allow"
    assert decide("POST", "/task_runs/", {"flow_run_id": OTHER}).kind == "refuse"
    task_run = str(uuid.uuid4())
    verdict = decide("POST", f"/task_runs/{task_run}/set_state")
    assert (verdict.kind, verdict.task_run_id) == ("task_run", task_run)


def test_its_states_may_be_read_not_another_runs() -> None:
    assert decide("GET", "/flow_run_states/", flow_run_id=RUN).kind == "allow"
    assert decide("GET", "/flow_run_states/", flow_run_id=OTHER).kind == "refuse"


def test_the_csrf_token_is_answered_by_the_gateway() -> None:
    assert decide("GET", "/csrf-token", client="x").kind == "csrf"


def event(resource: str, related: list[str], **payload: object) -> dict[str, object]:
    return {
        "event": "x",
        "resource": {"prefect.resource.id": resource},
        "related": [
            {"prefect.resource.id": r, "prefect.resource.role": r.split(".")[1]} for r in related
        ],
        "payload": payload,
    }


def test_a_job_reports_its_runs_heartbeats_its_task_runs_and_its_block_loads() -> None:
    own = f"prefect.flow-run.{RUN}"
    assert rules.event_allowed(event(own, []), OWN) is None
    assert rules.event_allowed(event(f"prefect.task-run.{uuid.uuid4()}", [own]), OWN) is None
    assert rules.event_allowed(event("prefect.block-document.b1", [own]), OWN) is None


@pytest.mark.parametrize(
    ("resource", "related", "payload", "why"),
    [
        (f"prefect.flow-run.{OTHER}", [], {}, "an event about"),
        (f"prefect.task-run.{uuid.uuid4()}", [], {}, "not related to its own run"),
        (f"prefect.task-run.{uuid.uuid4()}", [f"prefect.flow-run.{OTHER}"], {}, "another"),
        (
            f"prefect.task-run.{uuid.uuid4()}",
            [f"prefect.flow-run.{RUN}"],
            {"task_run": {"flow_run_id": OTHER}},
            "a task run of another flow run",
        ),
        ("prefect.block-document.b2", [], {}, "another block"),
        (f"prefect.deployment.{DEPLOYMENT}", [f"prefect.flow-run.{RUN}"], {}, "an event about"),
        ("my.own.resource", [], {}, "an event about"),
    ],
)
def test_other_events_are_dropped(
    resource: str, related: list[str], payload: dict[str, object], why: str
) -> None:
    reason = rules.event_allowed(event(resource, related, **payload), OWN)
    assert reason is not None and why in reason


def test_a_subscription_is_narrowed_to_the_jobs_own_run() -> None:
    asked = {"event": {"prefix": ["prefect."]}, "resource": {"id_prefix": ["prefect."]}}
    narrowed = rules.restrict_subscription(asked, OWN)
    assert narrowed == {
        "event": {"prefix": ["prefect."]},
        "resource": {"id": [f"prefect.flow-run.{RUN}"]},
    }
    assert rules.restrict_subscription(None, OWN)["resource"] == narrowed["resource"]
