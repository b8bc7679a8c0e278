"""Per-run job credentials and a job's environment: nothing of the platform's gets through."""

from __future__ import annotations

import base64
import time
import uuid

import pytest

from taskscheduler.gate import credential, environment
from taskscheduler.sandbox import launch

KEY = b"k" * 32


def test_a_credential_names_its_run_and_verifies_with_the_key_only() -> None:
    run = uuid.uuid4()
    minted = credential.mint(KEY, run)
    assert credential.verify(KEY, minted).run_id == run
    with pytest.raises(credential.InvalidCredential, match="signature"):
        credential.verify(b"x" * 32, minted)


def test_a_credential_cannot_be_moved_to_another_run() -> None:
    prefix, run, expires, signature = credential.mint(KEY, uuid.uuid4()).split(".")
    forged = ".".join([prefix, str(uuid.uuid4()), expires, signature])
    with pytest.raises(credential.InvalidCredential, match="signature"):
        credential.verify(KEY, forged)
    longer = ".".join([prefix, run, str(int(expires) + 10**6), signature])
    with pytest.raises(credential.InvalidCredential, match="signature"):
        credential.verify(KEY, longer)


def test_an_expired_or_malformed_credential_is_refused() -> None:
    minted = credential.mint(KEY, uuid.uuid4(), lifetime=10)
    with pytest.raises(credential.InvalidCredential, match="expired"):
        credential.verify(KEY, minted, now=time.time() + 20)
    for text in ("", "tsj1.x.y", "tsk_admin-token", "tsj1.a.b.c.d"):
        with pytest.raises(credential.InvalidCredential):
            credential.verify(KEY, text)


def test_a_job_presents_its_credential_as_basic_auth_or_websocket_token() -> None:
    minted = credential.mint(KEY, uuid.uuid4())
    auth = credential.auth_string(minted)
    header = "Basic " + base64.b64encode(auth.encode()).decode()
    assert credential.from_basic_header(header) == minted
    assert credential.from_auth_string(auth) == minted
    with pytest.raises(credential.InvalidCredential):
        credential.from_auth_string("taskscheduler:the-platforms-auth-string")
    with pytest.raises(credential.InvalidCredential):
        credential.from_basic_header("Bearer " + minted)


WORKER_ENV = {
    "PATH": "/usr/bin",
    "HOME": "/root",
    "PREFECT_API_URL": "http://127.0.0.1:4200/api",
    "PREFECT_API_AUTH_STRING": "taskscheduler:platform-secret-123",
    "PREFECT_API_KEY": "pnu_key",
    "PREFECT_SERVER_DATABASE_CONNECTION_URL": "postgresql+asyncpg://p:pw-12345678@db/x",
    "PREFECT_SERVER_API_AUTH_STRING": "taskscheduler:platform-secret-123",
    "PREFECT__CONTROL_PORT": "4711",
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
    "PREFECT__FLOW_RUN_ID": "run",
    "PREFECT_LOGGING_LEVEL": "INFO",
    "TASKS_DATABASE_URL": "postgresql://postgres@127.0.0.1/taskscheduler",
    "TASKS_ADMIN_TOKEN": "tsk_admin-token-1234",
    "TASKS_GATE_KEY": "gate-key-12345678",
    "TASKS_PROJECT_DIR": "/srv/project",
    "TASKS_STATE_DIR": "/srv/project/.run",
    "SOMETHING_ELSE": "leaks?",
    "PREFECT_CLIENT_CUSTOM_HEADERS": '{"X-Copy": "platform-secret-123"}',
    environment.CREDENTIAL_VARIABLE: "tsj1.run.1.sig",
}


def test_a_jobs_environment_keeps_prefects_client_settings_and_drops_the_platforms() -> None:
    job = launch.job_environment(WORKER_ENV, door=True)
    assert job["PREFECT_API_AUTH_STRING"] == "job:tsj1.run.1.sig"
    assert job[environment.DOOR_VARIABLE] == "/run/door/gate.sock"
    assert job["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"
    assert job["PREFECT__FLOW_RUN_ID"] == "run"
    assert job["TASKS_PROJECT_DIR"] == "/srv/project"
    assert job["HOME"] == "/tmp"
    for name in (
        "PREFECT_API_URL",
        "PREFECT_API_KEY",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL",
        "PREFECT_SERVER_API_AUTH_STRING",
        "PREFECT__CONTROL_PORT",
        "TASKS_DATABASE_URL",
        "TASKS_ADMIN_TOKEN",
        "TASKS_GATE_KEY",
        "TASKS_STATE_DIR",
        environment.CREDENTIAL_VARIABLE,
        "SOMETHING_ELSE",
    ):
        assert name not in job, name


def test_a_variable_holding_a_platform_secret_is_dropped_whatever_its_name() -> None:
    job = launch.job_environment(WORKER_ENV, door=False)
    assert "PREFECT_CLIENT_CUSTOM_HEADERS" not in job
    values = "\n".join(job.values())
    for secret in ("platform-secret-123", "pw-12345678", "tsk_admin-token", "gate-key"):
        assert secret not in values


def test_the_fast_lanes_processes_get_neither_door_nor_credential() -> None:
    job = launch.job_environment({**WORKER_ENV}, door=False)
    assert environment.DOOR_VARIABLE not in job
    assert job["PREFECT_API_AUTH_STRING"] == "job:tsj1.run.1.sig"  # only what the env held
    no_credential = {k: v for k, v in WORKER_ENV.items() if k != environment.CREDENTIAL_VARIABLE}
    assert "PREFECT_API_AUTH_STRING" not in launch.job_environment(no_credential, door=False)
