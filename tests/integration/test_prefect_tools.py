"""Prefect's own tools see the same world as ours: its CLI, `prefect deploy` and its client."""

from __future__ import annotations

import datetime as dt

from taskscheduler import JobState, TaskScheduler
from taskscheduler.platform import LocalPlatform
from tests.integration.helpers import cli_json, prefect, unique, wait_for

HELLO = "def main():\n    print('hi from prefect')\n"


def test_a_task_from_our_cli_is_listed_and_run_by_prefects_cli(platform: LocalPlatform) -> None:
    name = unique()
    created = cli_json("create", name, "--code", HELLO)
    listing = prefect("deployment", "ls")
    assert listing.returncode == 0, listing.stderr
    assert f"run-task/{name}" in listing.stdout.replace("\n", "")
    started = prefect("deployment", "run", f"run-task/{name}")
    assert started.returncode == 0, started.stderr
    with TaskScheduler() as ts:
        job = wait_for(
            lambda: next((j for j in ts.jobs(task=name) if j.state is JobState.COMPLETED), None),
            timeout=120,
            what="the job started by prefect deployment run",
        )
        assert job.task == name and created["deployment_id"] == ts.get(name).deployment_id
        assert "hi from prefect" in [line.message for line in ts.logs(job.id)]


def test_a_deployment_from_prefect_yaml_is_listed_and_run_by_our_cli(
    platform: LocalPlatform,
) -> None:
    project = platform.settings.project_dir
    deployed = prefect("--no-prompt", "deploy", "--all", cwd=project)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    tasks = {t["name"]: t for t in cli_json("list")}
    assert "yaml-report" in tasks
    listed = tasks["yaml-report"]
    assert listed["managed"] is False and listed["spec"] is None
    assert listed["schedule"].startswith("cron 30 6 * * *")
    job = cli_json("run", "yaml-report", "--wait")
    assert job["state"] == "completed"
    with TaskScheduler() as ts:
        messages = [line.message for line in ts.logs(job["id"])]
        assert "Result: 10" in messages
        assert ts.get("yaml-report").next_runs[0] > dt.datetime.now(dt.UTC)
