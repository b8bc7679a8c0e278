"""What of its worker's environment a job keeps (gate.environment.for_job)."""

from __future__ import annotations

from taskscheduler.gate import environment


def test_a_job_keeps_what_it_needs_and_nothing_secret() -> None:
    env = environment.for_job(
        {
            "TASKS_PROJECT_DIR": "/srv/project",
            "TASKS_MISFIRE_GRACE": "5s",
            "TASKS_DATABASE_URL": "postgresql://u:pw@127.0.0.1/db",
            "TASKS_ADMIN_TOKEN": "tsk_admin_token_value",
            "PREFECT_API_URL": "http://127.0.0.1:4200/api",
            "PREFECT_API_AUTH_STRING": "admin:supersecretpassword",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "HOME": "/root",
        },
        secrets=["supersecretpassword"],
        job_credential=None,
        door="/run/door/gate.sock",
    )
    # The API address is the door's, set by the relay in the sandbox: the worker's is dropped.
    assert env == {
        "TASKS_PROJECT_DIR": "/srv/project",
        # The operator's grace judges the job's lateness under misfire policy 'skip'.
        "TASKS_MISFIRE_GRACE": "5s",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "TASKS_DOOR": "/run/door/gate.sock",
    }
