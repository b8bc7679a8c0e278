"""Tasks as Prefect deployments and jobs as flow runs, against a real server and worker."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from taskscheduler import JobState, Task, TaskScheduler, errors
from taskscheduler._prefect import session
from taskscheduler.platform import LocalPlatform
from tests.integration.helpers import scheduler, stored_in_prefect, unique, wait_for

HELLO = """
def main(who="world"):
    print(f"hello {who}")
    return 42
"""


@pytest.fixture(scope="module")
def ts(platform: LocalPlatform) -> Iterator[TaskScheduler]:
    with scheduler() as client:
        yield client


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_created_task_is_a_deployment_of_the_generic_flow(ts: TaskScheduler) -> None:
    name = unique()
    task = ts.create({"name": name, "code": HELLO, "cron": "0 9 * * *", "timezone": "Europe/Paris"})
    assert task.managed and task.flow == "run-task"
    assert task.version == 1 and task.versions[0].sha256 == task.code_sha256

    async def read() -> object:
        async with get_client() as client:
            return await client.read_deployment_by_name(f"run-task/{name}")

    import asyncio

    deployment = asyncio.run(read())
    assert str(deployment.id) == task.deployment_id  # type: ignore[attr-defined]
    schedules = deployment.schedules  # type: ignore[attr-defined]
    assert schedules[0].schedule.cron == "0 9 * * *"
    assert schedules[0].schedule.timezone == "Europe/Paris"
    assert len(task.next_runs) >= 3, "the next runs are created at once, not a minute later"
    paris = ZoneInfo("Europe/Paris")
    assert all(t.astimezone(paris).time() == dt.time(9) for t in task.next_runs), task.next_runs


def test_run_now_completes_with_printed_and_logged_output_in_its_logs(ts: TaskScheduler) -> None:
    name = unique()
    code = HELLO + "\nimport logging\ndef shout():\n    logging.getLogger('mine').warning('LOUD')\n"
    code = code.replace('print(f"hello {who}")', 'print(f"hello {who}")\n    shout()')
    ts.create({"name": name, "code": code})
    job = ts.wait(ts.run(name, {"who": "Ada"}).id, timeout=120)
    assert job.state is JobState.COMPLETED, job
    assert job.start_time is not None and job.code_version == 1
    messages = [line.message for line in ts.logs(job.id)]
    assert "hello Ada" in messages
    assert "LOUD" in messages
    assert "Result: 42" in messages
    assert not any(m.startswith("HTTP Request") for m in messages), (
        "library noise is not user output"
    )


def test_failing_code_is_retried_with_growing_delays_then_fails_with_its_traceback(
    ts: TaskScheduler,
) -> None:
    name = unique()
    ts.create(
        {
            "name": name,
            "code": "def main():\n    raise ValueError('boom')\n",
            "retries": 2,
            "retry_delay": "1s",
        }
    )
    job = ts.wait(ts.run(name).id, timeout=120)
    assert job.state is JobState.FAILED
    assert job.attempts == 3
    assert "ValueError: boom" in (job.error or "")
    logs = "\n".join(line.message for line in ts.logs(job.id))
    assert "Retry 1/2" in logs and "Retry 2/2" in logs
    assert "Traceback" in logs and "raise ValueError('boom')" in logs

    async def retry_gaps() -> list[float]:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(job.id)]))
            )
            states = sorted(
                await client.read_task_run_states(runs[0].id), key=lambda s: s.timestamp
            )
        names = [s.name for s in states]
        assert names.count("AwaitingRetry") == 2, names
        assert names.count("Retrying") == 2, names
        waits = [s for s in states if s.name == "AwaitingRetry"]
        return [
            (w.state_details.scheduled_time - w.timestamp).total_seconds()  # type: ignore[operator]
            for w in waits
        ]

    import asyncio

    first, second = asyncio.run(retry_gaps())
    assert 0.7 <= first <= 1.3, "first delay is retry_delay, give or take the jitter"
    assert 1.5 <= second <= 2.5, "then it doubles"


def test_a_timeout_stops_the_code_and_fails_the_job(ts: TaskScheduler, job_dir: Path) -> None:
    name = unique()
    marker = job_dir / "finished"
    code = f"import time\ndef main():\n    time.sleep(30)\n    open({str(marker)!r}, 'w').close()\n"
    ts.create({"name": name, "code": code, "timeout": "2s"})
    job = ts.wait(ts.run(name).id, timeout=120)
    assert job.state is JobState.FAILED
    assert job.state_name == "TimedOut" or "timed out" in (job.error or "").lower()
    assert job.end_time and job.start_time and (job.end_time - job.start_time).total_seconds() < 15
    assert not marker.exists()


def test_cancel_stops_a_running_job_and_refuses_a_finished_one(
    ts: TaskScheduler, job_dir: Path
) -> None:
    name = unique()
    started, finished = job_dir / "started", job_dir / "finished"
    code = (
        "import time\ndef main():\n"
        f"    open({str(started)!r}, 'w').close()\n"
        "    time.sleep(20)\n"
        f"    open({str(finished)!r}, 'w').close()\n"
    )
    ts.create({"name": name, "code": code})
    job = ts.run(name)
    wait_for(started.exists, what="the job to start")
    assert ts.cancel(job.id).state_name in ("Cancelling", "Cancelled")
    done = wait_for(
        lambda: (j := ts.job(job.id)).state.is_final and j, timeout=60, what="cancellation"
    )
    assert done.state is JobState.CANCELLED
    with pytest.raises(errors.JobAlreadyFinished):
        ts.cancel(job.id)
    # The flow-run process was really stopped: it never gets to write its last file.
    deadline = now() + dt.timedelta(seconds=25)
    while now() < deadline:
        assert not finished.exists()
        import time

        time.sleep(1)


def test_a_waiting_job_can_be_cancelled(ts: TaskScheduler) -> None:
    name = unique()
    ts.create({"name": name, "code": HELLO})
    job = ts.schedule(name, now() + dt.timedelta(hours=1))
    assert ts.cancel(job.id).state is JobState.CANCELLED


def test_schedule_at_runs_the_job_at_that_time(ts: TaskScheduler) -> None:
    name = unique()
    ts.create({"name": name, "code": HELLO})
    at = now() + dt.timedelta(seconds=4)
    job = ts.schedule(name, at)
    assert job.state is JobState.PENDING and job.scheduled_time == at
    done = ts.wait(job.id, timeout=120)
    assert done.state is JobState.COMPLETED
    # On Prefect's own path (this process lane) its WaitForScheduledTime rule rounds the wait to
    # whole seconds, so Running is allowed up to half a second early (seen: 9 ms). The fast
    # lane starts none before its time (test_fastlane).
    assert done.start_time is not None and done.start_time >= at - dt.timedelta(seconds=0.5)


def test_reschedule_moves_a_waiting_job_and_refuses_a_started_one(ts: TaskScheduler) -> None:
    name = unique()
    ts.create({"name": name, "code": HELLO})
    job = ts.schedule(name, now() + dt.timedelta(hours=2))
    later = (now() + dt.timedelta(hours=3)).replace(microsecond=0)
    moved = ts.reschedule(job.id, later)
    assert moved.scheduled_time == later and moved.state is JobState.PENDING
    old = ts.job(job.id)
    assert old.state is JobState.CANCELLED and moved.id in (old.detail or "")
    assert [j.id for j in ts.jobs(task=name, state="pending")] == [moved.id], "no job twice"
    soon = ts.reschedule(moved.id, now())
    done = ts.wait(soon.id, timeout=120)
    assert done.state is JobState.COMPLETED
    assert done.start_delay is not None and done.start_delay < 60, "delay counts from the new time"
    with pytest.raises(errors.JobAlreadyStarted):
        ts.reschedule(done.id, now() + dt.timedelta(hours=1))


def _waiting_runs(ts: TaskScheduler, name: str) -> list[tuple[dt.datetime, bool, int | None]]:
    jobs = ts.jobs(task=name, state="pending", limit=500)
    return sorted((j.scheduled_time, j.auto_scheduled, j.code_version) for j in jobs)  # type: ignore[misc]


def test_update_keeps_future_runs_without_duplicates_and_with_the_new_code(
    ts: TaskScheduler,
) -> None:
    name = unique()
    ts.create({"name": name, "code": HELLO, "cron": "*/5 * * * *"})
    manual_at = (now() + dt.timedelta(hours=5)).replace(microsecond=0)
    manual = ts.schedule(name, manual_at)
    before = _waiting_runs(ts, name)
    assert len({t for t, auto, _ in before if auto}) >= 3

    task = ts.update(name, {"code": HELLO.replace("hello", "bonjour")})
    assert task.version == 2 and [v.version for v in task.versions] == [1, 2]
    after = _waiting_runs(ts, name)
    times_before = [t for t, _, _ in before if t > now() + dt.timedelta(seconds=5)]
    times_after = [t for t, _, _ in after if t > now() + dt.timedelta(seconds=5)]
    assert times_after == times_before, "same slots, none lost, none doubled"
    assert len(set(t for t, _, _ in after)) == len(after), "no slot twice"
    assert {v for _, _, v in after} == {2}, "every waiting job runs the new version"
    assert ts.job(manual.id).scheduled_time == manual_at, "a hand-scheduled job keeps its time"


def test_update_of_the_schedule_replaces_the_future_runs(ts: TaskScheduler) -> None:
    name = unique()
    ts.create({"name": name, "code": HELLO, "cron": "0 * * * *"})
    ts.update(name, {"cron": "30 * * * *"})
    minutes = {t.minute for t, _, _ in _waiting_runs(ts, name)}
    assert minutes == {30}
    task = ts.get(name)
    assert task.spec is not None and task.spec.cron == "30 * * * *"


def test_invalid_update_changes_nothing(ts: TaskScheduler) -> None:
    name = unique()
    ts.create({"name": name, "code": HELLO, "every": "10m"})
    with pytest.raises(errors.InvalidSchedule) as caught:
        ts.update(name, {"cron": "not a cron"})
    assert caught.value.field == "cron"
    with pytest.raises(errors.InvalidTask) as bad_code:
        ts.update(name, {"code": "def main(:\n"})
    assert bad_code.value.field == "code"
    task = ts.get(name)
    assert (
        task.version == 1 and task.spec is not None and task.spec.every == dt.timedelta(minutes=10)
    )


def test_invalid_task_writes_nothing(ts: TaskScheduler) -> None:
    name = unique()
    with pytest.raises(errors.InvalidTask) as caught:
        ts.create({"name": name, "code": "def main(x):\n    pass\n", "parameters": {"y": 1}})
    assert caught.value.field == "parameters.y"
    with pytest.raises(errors.TaskNotFound):
        ts.get(name)


def test_creating_a_task_twice_is_refused(ts: TaskScheduler) -> None:
    name = unique()
    ts.create({"name": name, "code": HELLO})
    with pytest.raises(errors.TaskAlreadyExists):
        ts.create({"name": name, "code": HELLO})


def test_a_created_task_is_answered_as_reading_it_answers(ts: TaskScheduler) -> None:
    """A create answers from what it wrote and one read of the deployment, not the five reads
    of a task's detail: the answer must be what a read of the task says."""
    name = unique()
    tomorrow = (now() + dt.timedelta(days=1)).isoformat()  # no job starts in between
    made = ts.create(
        {"name": name, "code": HELLO, "every": "10m", "start": tomorrow, "parameters": {"who": "x"}}
    )
    read = ts.get(name)
    assert made == read
    assert made.next_runs and made.last_job is None
    assert [v.version for v in made.versions] == [1]


def test_a_create_reads_again_the_ids_it_remembered_when_they_are_gone(
    ts: TaskScheduler,
) -> None:
    """A gateway remembers the generic flow's and the code block's ids for the process; if the
    objects were deleted and made again in Prefect, a create finds the ids gone, reads them
    afresh and succeeds, and a read matches the task to its code again."""
    name = unique()
    ts.create({"name": name, "code": HELLO})  # the ids are known
    known = session._KNOWN[session.api_url()]
    remembered = (known.flow, known.code_block)
    for stale in ({"flow": uuid.uuid4()}, {"code_block": (uuid.uuid4(), uuid.uuid4())}):
        known.flow, known.code_block = remembered
        for field, value in stale.items():
            setattr(known, field, value)
        again = unique()
        made = ts.create({"name": again, "code": HELLO})
        assert made.managed and made.version == 1
        assert (known.flow, known.code_block) == remembered
    known.flow = uuid.uuid4()  # reads of tasks on a flow not remembered read it afresh
    assert ts.get(name).managed and ts.get(name).spec is not None
    assert known.flow == remembered[0]


def test_interval_runs_stop_at_end_and_none_start_before_start(ts: TaskScheduler) -> None:
    name = unique()
    start = (now() + dt.timedelta(seconds=3)).replace(microsecond=0)
    end = start + dt.timedelta(seconds=6)
    ts.create({"name": name, "code": HELLO, "every": "2s", "start": start, "end": end})
    jobs = ts.jobs(task=name, limit=100)
    times = sorted(j.scheduled_time for j in jobs if j.scheduled_time)
    assert times == [start + dt.timedelta(seconds=2 * i) for i in range(4)]
    wait_for(
        lambda: all(j.state.is_final for j in ts.jobs(task=name, limit=100)),
        timeout=120,
        what="the windowed jobs to finish",
    )
    with pytest.raises(errors.InvalidSchedule):
        ts.run(name)  # the window has closed: no job is created outside it
    assert len(ts.jobs(task=name, limit=100)) == 4


def test_cron_follows_daylight_saving_time_in_its_zone(
    ts: TaskScheduler, platform: LocalPlatform
) -> None:
    """09:00 in Berlin is 08:00 UTC before the next spring change of clocks and 07:00 UTC
    after it, on both paths (a plain cron, and one limited to a window around the change)."""
    berlin = ZoneInfo("Europe/Berlin")
    change = next_spring_change(dt.date.today())  # a Sunday: 02:00 becomes 03:00
    first, end = change - dt.timedelta(days=2), change + dt.timedelta(days=3)
    start_utc = dt.datetime.combine(first, dt.time(), dt.UTC)
    end_utc = dt.datetime.combine(end, dt.time(), dt.UTC)
    plain, windowed = unique(), unique()
    ts.create({"name": plain, "code": HELLO, "cron": "0 9 * * *", "timezone": "Europe/Berlin"})
    ts.create(
        {
            "name": windowed,
            "code": HELLO,
            "cron": "0 9 * * *",
            "timezone": "Europe/Berlin",
            "start": f"{first.isoformat()}T00:00:00",
            "end": f"{end.isoformat()}T00:00:00",
        }
    )
    import asyncio

    async def materialise(deployment_id: str) -> None:
        # Prefect's own client: the server wants its auth string and a CSRF token.
        async with get_client() as prefect_client:
            response = await prefect_client.request(
                "POST",
                "/deployments/{id}/schedule",
                path_params={"id": deployment_id},
                json={
                    "start_time": start_utc.isoformat(),
                    "end_time": end_utc.isoformat(),
                    "min_runs": 10,
                },
            )
            response.raise_for_status()

    expected = [
        dt.datetime.combine(first + dt.timedelta(days=k), dt.time(9), berlin).astimezone(dt.UTC)
        for k in range(5)
    ]
    assert [t.hour for t in expected] == [8, 8, 7, 7, 7], "the window spans the change"
    for name in (plain, windowed):
        asyncio.run(materialise(ts.get(name).deployment_id))
        times = [t for t, _, _ in _waiting_runs(ts, name)]
        in_range = [t for t in times if start_utc <= t < end_utc]
        assert in_range == expected, name
    assert all(t < end_utc for t, _, _ in _waiting_runs(ts, windowed))


def next_spring_change(today: dt.date) -> dt.date:
    """The next last Sunday of March at least three days away (when central Europe's clocks
    go forward)."""
    for year in (today.year, today.year + 1):
        march_31 = dt.date(year, 3, 31)
        change = march_31 - dt.timedelta(days=(march_31.weekday() + 1) % 7)
        if change - dt.timedelta(days=3) > today:
            return change
    raise AssertionError("unreachable: next year's change is always ahead")


def test_pause_removes_waiting_runs_and_resume_brings_them_back(ts: TaskScheduler) -> None:
    name = unique()
    ts.create({"name": name, "code": HELLO, "every": "1h"})
    assert ts.pause(name).paused
    assert not [j for j in ts.jobs(task=name, state="pending") if j.auto_scheduled]
    resumed = ts.resume(name)
    assert not resumed.paused and len(resumed.next_runs) >= 3


def test_delete_removes_the_task_and_its_waiting_jobs_but_keeps_history(
    ts: TaskScheduler,
) -> None:
    name = unique()
    ts.create({"name": name, "code": HELLO, "every": "1h"})
    done = ts.wait(ts.run(name).id, timeout=120)
    waiting = ts.schedule(name, now() + dt.timedelta(hours=1))
    ts.delete(name)
    with pytest.raises(errors.TaskNotFound):
        ts.get(name)
    with pytest.raises(errors.JobNotFound):
        ts.job(waiting.id)
    history = ts.job(done.id)
    assert history.state is JobState.COMPLETED and history.task is None


def test_concurrency_limit_holds_back_a_second_job(ts: TaskScheduler) -> None:
    name = unique()
    code = "import time\ndef main():\n    time.sleep(3)\n"
    ts.create({"name": name, "code": code, "concurrency": 1})
    first, second = ts.run(name), ts.run(name)
    a, b = ts.wait(first.id, timeout=180), ts.wait(second.id, timeout=180)
    assert a.state is b.state is JobState.COMPLETED
    spans = sorted([(a.start_time, a.end_time), (b.start_time, b.end_time)])  # type: ignore[type-var]
    assert spans[1][0] >= spans[0][1], "the second job waited for the first"


def test_entrypoint_task_runs_a_function_from_the_project(ts: TaskScheduler) -> None:
    name = unique()
    ts.create(
        {
            "name": name,
            "entrypoint": "deployments/code/report.py:main",
            "parameters": {"items": [3, 4]},
        }
    )
    job = ts.wait(ts.run(name).id, timeout=120)
    assert job.state is JobState.COMPLETED
    assert "Result: 7" in [line.message for line in ts.logs(job.id)]


def test_list_jobs_filters_by_task_and_state(ts: TaskScheduler) -> None:
    name = unique()
    ts.create({"name": name, "code": HELLO})
    done = ts.wait(ts.run(name).id, timeout=120)
    waiting = ts.schedule(name, now() + dt.timedelta(hours=1))
    assert [j.id for j in ts.jobs(task=name, state="completed")] == [done.id]
    assert [j.id for j in ts.jobs(task=name, state="pending")] == [waiting.id]
    with pytest.raises(errors.InvalidTask):
        ts.jobs(state="bogus")
    with pytest.raises(errors.JobNotFound):
        ts.job(str(uuid.uuid4()))
    with pytest.raises(errors.JobNotFound):
        ts.job("not-a-uuid")


# ---- a write that fails part-way leaves nothing behind ----------------------------------------


def test_creates_of_one_name_at_once_make_one_task_and_refuse_the_others(
    ts: TaskScheduler,
) -> None:
    """A create is one transaction of the Prefect server: of four creates of one name sent
    together, one makes the task and each other is refused as taken, whether it lost the
    name check or, having passed it, the insert (a 409 then names the name too); one
    deployment and one code version exist afterwards."""
    name = unique("race")

    def create(retries: int) -> Task:
        with TaskScheduler() as own:  # a client each: one's event loop serves one thread
            return own.create({"name": name, "code": HELLO, "every": "1h", "retries": retries})

    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # each with the test's settings
        futures = [pool.submit(contextvars.copy_context().run, create, n) for n in range(4)]
    made, refused = [], []
    for future in futures:
        try:
            made.append(future.result())
        except errors.TaskAlreadyExists as exc:
            refused.append(str(exc))
    assert len(made) == 1 and len(refused) == 3, (made, refused)
    assert all(name in message for message in refused), refused
    assert asyncio.run(stored_in_prefect(name)) == ([name], [f"{name}-v1"])
    task = ts.get(name)
    assert task.version == 1 and task.spec is not None and task.spec == made[0].spec
    assert task.next_runs, "the winner's first jobs were made"
    ts.delete(name)


def test_an_update_refused_by_the_pool_leaves_no_version_and_the_next_update_works(
    ts: TaskScheduler,
) -> None:
    name = unique("atomic")
    ts.create({"name": name, "code": HELLO})
    with pytest.raises(errors.InvalidTask) as refused:
        ts.update(name, {"pool": "no-such-pool", "retries": 1})
    assert refused.value.field == "pool"
    assert asyncio.run(stored_in_prefect(name)) == ([name], [f"{name}-v1"])
    updated = ts.update(name, {"retries": 2})
    assert updated.version == 2 and updated.spec is not None and updated.spec.retries == 2
    ts.delete(name)
