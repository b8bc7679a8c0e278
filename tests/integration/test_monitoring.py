"""Monitoring figures match what Prefect reports; ``tasks status``; pg_dump and pg_restore."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas import filters, objects
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from taskscheduler import JobState, TaskScheduler
from taskscheduler.platform import LocalPlatform
from taskscheduler.services import monitoring
from tests.integration.conftest import drop_database, free_port, pointing_at
from tests.integration.helpers import cli, scheduler, unique, wait_for


@pytest.fixture(scope="module")
def ts(platform: LocalPlatform) -> Iterator[TaskScheduler]:
    with scheduler() as client:
        yield client


async def _prefect_counts(deployment_id: str) -> dict[str, int]:
    async with get_client() as client:
        counts = {}
        for state in objects.StateType:
            counts[state.value.lower()] = await client.count_flow_runs(
                flow_run_filter=filters.FlowRunFilter(
                    deployment_id=filters.FlowRunFilterDeploymentId(any_=[deployment_id]),
                    state=filters.FlowRunFilterState(
                        type=filters.FlowRunFilterStateType(any_=[state])
                    ),
                )
            )
        return {k: v for k, v in counts.items() if v}


def test_job_counts_backlog_and_workers_match_what_prefect_reports(
    ts: TaskScheduler, platform: LocalPlatform
) -> None:
    name = unique("metrics")
    task = ts.create({"name": name, "code": "def main():\n    return 1\n", "cron": "0 3 * * *"})
    done = [ts.wait(ts.run(name).id, timeout=180) for _ in range(2)]
    assert all(j.state is JobState.COMPLETED for j in done)
    snapshot = asyncio.run(monitoring.take_snapshot())
    assert snapshot.server_ok and snapshot.database_ok
    assert snapshot.jobs[name] == asyncio.run(_prefect_counts(task.deployment_id))
    assert snapshot.jobs[name]["completed"] == 2 and snapshot.jobs[name]["scheduled"] >= 1

    async def scheduled_total() -> int:
        async with get_client() as client:
            return await client.count_flow_runs(
                flow_run_filter=filters.FlowRunFilter(
                    deployment_id=filters.FlowRunFilterDeploymentId(is_null_=False),
                    state=filters.FlowRunFilterState(
                        type=filters.FlowRunFilterStateType(any_=[objects.StateType.SCHEDULED])
                    ),
                )
            )

    # The platform-wide backlog moves while other tests' schedules run: compare it at a moment
    # when Prefect's count was the same just before and just after the snapshot.
    seen: list[tuple[int, int, int]] = []

    def settled_backlog() -> tuple[int, int, int] | None:
        before = asyncio.run(scheduled_total())
        ours = asyncio.run(monitoring.take_snapshot()).scheduled
        after = asyncio.run(scheduled_total())
        seen.append((before, ours, after))
        return (before, ours, after) if before == after else None

    before, ours, _ = wait_for(
        settled_backlog, timeout=120, interval=1, what=lambda: f"a still backlog; saw {seen}"
    )
    assert ours == before, f"snapshot {ours}, Prefect {before} before and after it"
    pool = next(p for p in snapshot.pools if p.name == "process")
    assert pool.online_workers >= 1
    assert all(w.heartbeat_age is not None and w.heartbeat_age < 120 for w in pool.workers)
    assert snapshot.delay_count >= 2
    assert any(p.service == "prefect-server" and p.rss_bytes > 0 for p in snapshot.processes)


def test_metrics_endpoint_exposes_platform_figures(
    ts: TaskScheduler, platform: LocalPlatform
) -> None:
    name = unique("scrape")
    ts.create({"name": name, "code": "def main():\n    return 1\n"})
    ts.wait(ts.run(name).id, timeout=180)
    text = httpx.get(f"{platform.service_api_url}/metrics", timeout=30).text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    def values(name: str, **labels: str) -> list[float]:
        return [
            v for (n, ls), v in samples.items()
            if n == name and set(labels.items()) <= set(ls)
        ]  # fmt: skip

    assert value("taskscheduler_task_jobs", state="completed", task=name) == 1
    assert value("taskscheduler_database_up") == 1
    # The job just run, at least, with a start delay: counted in the histogram, +Inf included.
    assert value("taskscheduler_job_start_delay_seconds_count") >= 1
    assert value("taskscheduler_job_start_delay_seconds_bucket", le="+Inf") >= 1
    assert value("taskscheduler_backlog_jobs", kind="due") >= 0
    worker = platform.worker_name
    assert value("taskscheduler_worker_online", pool="process", worker=worker) == 1
    beat = value("taskscheduler_worker_last_heartbeat_timestamp_seconds", pool="process",
                 worker=worker)  # fmt: skip
    assert 0 <= time.time() - beat < 120
    assert all(v > 0 for v in values("taskscheduler_process_resident_memory_bytes",
                                     service="prefect-server"))  # fmt: skip
    assert values("taskscheduler_process_resident_memory_bytes", service="prefect-server")


def test_tasks_status_prints_health_at_a_glance(platform: LocalPlatform) -> None:
    out = cli("status").stdout
    assert "server:   ok" in out and "database: ok" in out
    assert "pool process (process)" in out and "backlog:" in out and "last hour:" in out


def test_canary_delay_is_reported_when_the_canary_runs(ts: TaskScheduler) -> None:
    """The canary task `up` creates runs on schedule and its delay reaches the snapshot."""
    # The watchdog creates it once it runs, which may be after `up` returned.
    canary = wait_for(
        lambda: next((t for t in ts.list(search="tasks-canary") if t.name == "tasks-canary"), None),
        timeout=120, interval=2, what="the canary task",
    )  # fmt: skip
    assert canary.spec is not None

    def measured() -> monitoring.Snapshot | None:
        snap = asyncio.run(monitoring.take_snapshot())
        return snap if snap.canary_delay is not None else None

    snap = wait_for(measured, timeout=150, interval=5, what="a canary run")
    # Any state: a canary job that started, then crashed or awaits a retry, keeps its start.
    started = [j for j in ts.jobs(task="tasks-canary", limit=500) if j.start_time is not None]
    assert started, "the snapshot saw a started canary job that the SDK does not list"
    assert snap.canary_last_start is not None
    # The job the snapshot measured (listed after the snapshot, it is among them whatever
    # started since): the figure is its delay.
    measured_job = [
        j
        for j in started
        if j.start_time is not None
        and abs((j.start_time - snap.canary_last_start).total_seconds()) < 0.01
    ]
    assert len(measured_job) == 1, (snap.canary_last_start, [j.start_time for j in started])
    assert snap.canary_delay == pytest.approx(measured_job[0].start_delay, abs=0.01)


# ---- backup and restore -----------------------------------------------------------------------


@pytest.mark.timeout(900)  # it starts a second whole platform on the restored database
def test_pg_dump_and_restore_bring_back_tasks_schedules_tokens_audit_and_history(
    ts: TaskScheduler, platform: LocalPlatform, admin: httpx.Client, tmp_path: Path
) -> None:
    """pg_dump of the platform database, pg_restore into a new one, a platform on it: the task
    fires, a token made before the backup still signs in (and only as itself), the audit log
    and a finished job's record and logs are there."""
    name = unique("backup")
    # Its runs planned ahead are in the dump and overdue once the copy is up. The fast lane with
    # misfire "latest" skips them in a moment; on the process lane each would start an
    # interpreter first (and all at once, before the worker had a limit, which starved the
    # second server until the worker gave up).
    ts.create(
        {"name": name, "code": "def main():\n    print('before the backup')\n", "every": "5s",
         "pool": "fast", "misfire": "latest"}
    )  # fmt: skip
    made = admin.post("/v1/tokens", json={"name": unique("kept"), "scope": "read"})
    assert made.status_code == 201, made.text
    reader = made.json()["token"]
    done = wait_for(
        lambda: ts.jobs(task=name, state=JobState.COMPLETED, limit=1),
        timeout=60,
        what="a job finished before the backup",
    )[0]
    url = make_url(platform.settings.database_url)
    dump = tmp_path / "platform.dump"
    host = [
        "-h",
        url.host or "127.0.0.1",
        "-p",
        str(url.port or 5432),
        "-U",
        url.username or "postgres",
    ]
    subprocess.run(
        ["pg_dump", *host, "-Fc", "-f", str(dump), url.database or ""], check=True, timeout=300
    )
    restored_db = f"tasks_restore_{secrets.token_hex(4)}"
    restored_url = url.set(database=restored_db).render_as_string(hide_password=False)
    subprocess.run(["createdb", *host, restored_db], check=True, timeout=60)
    state_dir = tmp_path / "restored"
    state_dir.mkdir()
    # The credentials (block encryption key, API secrets) are part of the backup too.
    shutil.copy(platform.settings.state_dir / "credentials.json", state_dir / "credentials.json")
    settings = platform.settings.model_copy(
        update={"database_url": restored_url, "prefect_port": free_port(), "api_port": free_port(),
                "state_dir": state_dir}
    )  # fmt: skip
    second = LocalPlatform(settings, {"TASKS_CANARY_EVERY": "0"}, docker=False)
    try:
        subprocess.run(
            ["pg_restore", *host, "--no-owner", "-d", restored_db, str(dump)],
            check=True,
            timeout=300,
        )
        ts.pause(name)  # the original stops firing: what fires next comes from the restore
        second.up()
        with pointing_at(second), TaskScheduler() as restored:
            task = restored.get(name)
            assert task.spec is not None and task.spec.every == dt.timedelta(seconds=5)
            restored.resume(name)
            since = dt.datetime.now(dt.UTC)

            def fired() -> bool:
                # Newest scheduled first would list only the runs planned ahead: ask for the
                # completed ones.
                return any(
                    j.scheduled_time and j.scheduled_time > since
                    for j in restored.jobs(task=name, state=JobState.COMPLETED, limit=20)
                )

            wait_for(fired, timeout=180, interval=2, what="a job of the restored task")
            before = restored.job(done.id)
            assert (before.state, before.end_time) == (JobState.COMPLETED, done.end_time)
            logs = [line.message for line in restored.logs(done.id)]
            assert "before the backup" in logs, logs
            with httpx.Client(
                base_url=second.service_api_url,
                headers={"Authorization": f"Bearer {reader}"},
                timeout=60,
            ) as kept:
                assert kept.get(f"/v1/tasks/{name}").status_code == 200
                assert kept.delete(f"/v1/tasks/{name}").status_code == 403  # still read-only
                audit = kept.get("/v1/audit", params={"task": name, "action": "task.create"})
            assert audit.status_code == 200, audit.text
            assert [r["outcome"] for r in audit.json()["items"]] == ["ok"], audit.json()
            print(f"\nbackup: pg_dump {dump.stat().st_size // 1024} KiB, restored task fired")
    finally:
        second.down()
        drop_database(restored_url)
