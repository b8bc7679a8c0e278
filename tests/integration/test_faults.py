"""Faults against real processes: killed workers, restarted servers and databases, misfires.

Each test prints one line ``faults=..., jobs=..., lost=0, duplicated=0`` (run pytest with
``-s`` to see them; docs/operations.md summarises them). Jobs record every execution of their
code in a file (one line per execution, naming the flow run), so a job that ran twice or
never shows up there, whatever Prefect's states say.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskscheduler import JobState, TaskScheduler, models, schedules
from taskscheduler.platform import (
    FAST_POOL,
    WORKER,
    LocalPlatform,
    _descendants,
)
from tests.integration.conftest import drop_database, free_port, pointing_at, throwaway_settings
from tests.integration.helpers import (
    STOP_TIMEOUT,
    finished,
    online_fast_worker,
    scheduler,
    settled,
    start_extra_worker,
    unique,
    wait_for,
    worker_of,
)

pytestmark = pytest.mark.slow

# Executions of a job's code are appended to `path`, one line per execution: the flow run id.
RECORD = """
import time

def main(path, seconds=0.0, fail=False):
    from prefect.runtime import flow_run
    if seconds:
        time.sleep(seconds)
    if fail:
        raise RuntimeError("failing on purpose")
    with open(path, "a") as out:
        out.write(f"{flow_run.id}\\n")
"""
FAULT_GRACE = 5  # s: the misfire grace of these tests
FAULT_ENV = {
    # A dead job is noticed after 45 s without a heartbeat (beats every 30 s, Prefect's minimum).
    "TASKS_ZOMBIE_AFTER": "45",
    "TASKS_WATCHDOG_INTERVAL": "1",
    "TASKS_MISFIRE_GRACE": str(FAULT_GRACE),
    "TASKS_CANARY_EVERY": "0",
    # A job stuck in Pending (claimed while the server was down) is crashed and retried after
    # 5 min instead of 10. Not less: on a slow two-core machine 16 process starts at once took
    # over 2 min (2026-11-27 evening), and crashing a run whose process is merely slow can
    # run it twice (docs/operations.md).
    "TASKS_PENDING_TIMEOUT": "300",
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
}


class FaultPlatform(LocalPlatform):
    """The platform without the fast lane and REST API, which these tests do not use.

    On a loaded two-core machine each costs tens of seconds of start-up; the faults here are
    about the Prefect server, the process pool, the watchdog and PostgreSQL.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workers.start_fast = _not_needed  # type: ignore[method-assign]
        self.api.start = _not_needed  # type: ignore[method-assign]


def _not_needed() -> None:
    """A part of the platform these tests do without."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def executions(path: Path) -> collections.Counter[str]:
    """How many times each job's code ran to its end."""
    if not path.exists():
        return collections.Counter()
    return collections.Counter(line for line in path.read_text().splitlines() if line)


def report(**figures: object) -> None:
    print("\n" + ", ".join(f"{k}={v}" for k, v in figures.items()))


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    """A platform of this module's own: its tests kill and restart parts of it."""
    state_dir = tmp_path_factory.mktemp("faults")
    # The misfire test brings the worker back to up to 12 overdue runs, which it must take at
    # once: a worker at its limit leaves the rest Scheduled, to be judged when picked up later.
    settings = throwaway_settings(state_dir).model_copy(update={"worker_limit": 20})
    platform = FaultPlatform(settings, FAULT_ENV, docker=False)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAULT_ENV.items():
            patch.setenv(name, value)
        try:
            platform.up()
            with pointing_at(platform):
                yield platform
        finally:
            try:
                platform.down()
            finally:
                drop_database(platform.settings.database_url)


@pytest.fixture
def ts(faulty: LocalPlatform) -> Iterator[TaskScheduler]:
    with scheduler() as client:
        yield client


# Jobs here start one interpreter each on two loaded cores: these tests take minutes.
SLOW_FAULT = pytest.mark.timeout(600)


def kill_worker_and_its_jobs(platform: LocalPlatform) -> int:
    """SIGKILL the process worker and every flow run it started (a host dying); how many."""
    pid = platform._live_pid(WORKER)
    assert pid is not None
    victims = [pid, *_descendants(pid)]
    for victim in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    wait_for(lambda: platform._live_pid(WORKER) is None, timeout=10, what="worker dead")
    platform.pid_path(WORKER).unlink(missing_ok=True)
    return len(victims)


@contextlib.contextmanager
def frozen_worker(platform: LocalPlatform) -> Iterator[None]:
    """The process worker (and its supervisor) SIGSTOPped: it polls nothing until the end."""
    pid = platform._live_pid(WORKER)
    assert pid is not None
    frozen = [pid, *_descendants(pid)]
    for victim in frozen:
        os.kill(victim, signal.SIGSTOP)
    try:
        yield
    finally:
        for victim in reversed(frozen):
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGCONT)


def final_jobs(ts: TaskScheduler, task: str, count: int, timeout: float) -> list[models.Job]:
    """Wait until at least ``count`` jobs of ``task`` have ended; return all its jobs."""

    def probe() -> list[models.Job] | None:
        jobs = ts.jobs(task=task, limit=500)
        ended = [j for j in jobs if settled(j)]
        return jobs if len(ended) >= count else None

    return wait_for(probe, timeout=timeout, interval=1.0, what=f"{count} jobs of {task} ended")


@SLOW_FAULT
def test_worker_killed_mid_job_crashes_within_bound_then_is_retried_once(
    faulty: LocalPlatform, ts: TaskScheduler, job_dir: Path
) -> None:
    """SIGKILL of a worker and its jobs: Crashed within ~zombie_after, retried, none doubled."""
    name, record = unique("kill"), job_dir / "runs.txt"
    ts.create(
        {
            "name": name,
            "code": RECORD,
            "parameters": {"path": str(record), "seconds": 12},
            "retries": 1,
            "retry_delay": "1s",
        }
    )
    jobs = [ts.run(name) for _ in range(3)]
    wait_for(
        lambda: all(ts.job(j.id).state is JobState.RUNNING for j in jobs),
        timeout=120,
        what="jobs running",
    )
    time.sleep(3)  # well inside user code, after the first heartbeat
    killed = kill_worker_and_its_jobs(faulty)
    killed_at = now()
    faulty.start_worker()
    # Crashed is final for ``ts.wait``; the watchdog then retries it: wait past it.
    ended = [finished(ts, j.id, timeout=240, interval=1.0) for j in jobs]
    crash_delays = []
    for job in ended:
        detail = ts.job(job.id)
        crashed = [s for s in detail.timeline if s.name == "Crashed"]
        assert crashed, f"{job.id} never crashed: {[s.name for s in detail.timeline]}"
        crash_delays.append((crashed[0].timestamp - killed_at).total_seconds())
        assert detail.state is JobState.COMPLETED, detail.timeline
    runs = executions(record)
    duplicated = sum(n - 1 for n in runs.values() if n > 1)
    lost = sum(1 for j in jobs if runs[j.id] == 0)
    report(
        # The worker's respawn wrapper dies too: the whole host is gone.
        faults=f"worker, its wrapper and {killed - 2} job processes SIGKILLed",
        jobs=len(jobs),
        crashed_after_s=f"{min(crash_delays):.0f}-{max(crash_delays):.0f}",
        retried=len(ended),
        lost=lost,
        duplicated=duplicated,
    )
    assert max(crash_delays) < 45 + 30 + 30, "crash detection is bounded"
    assert lost == 0 and duplicated == 0


@SLOW_FAULT
def test_fast_worker_killed_mid_job_crashes_within_bound_then_is_retried_once(
    faulty: LocalPlatform, ts: TaskScheduler, job_dir: Path
) -> None:
    """SIGKILL of a fast worker and its warm processes while a job runs: its heartbeats stop,
    the job is Crashed within ~zombie_after, retried on the worker that takes over, and its
    code runs to its end once."""
    name, record = unique("fast-kill"), job_dir / "fast-runs.txt"
    first = online_fast_worker(faulty, unique("doomed"))
    second: subprocess.Popen[bytes] | None = None
    try:
        ts.create(
            {"name": name, "code": RECORD, "pool": FAST_POOL, "retries": 1, "retry_delay": "1s",
             "parameters": {"path": str(record), "seconds": 8}}
        )  # fmt: skip
        job = ts.run(name)
        wait_for(
            lambda: ts.job(job.id).state is JobState.RUNNING, timeout=60, what="the job running"
        )
        time.sleep(2)  # inside user code
        os.killpg(first.pid, signal.SIGKILL)  # the worker, its wrapper and its warm processes
        first.wait(STOP_TIMEOUT)
        killed_at = now()
        second = online_fast_worker(faulty, unique("heir"))
        # Crashed is final for ``ts.wait``; the watchdog then retries it.
        ended = finished(ts, job.id, timeout=240, interval=1.0)
        crashed = [s for s in ended.timeline if s.name == "Crashed"]
        runs = executions(record)
        report(
            faults="fast worker and its warm processes SIGKILLed mid-job",
            jobs=1,
            crashed_after_s=f"{(crashed[0].timestamp - killed_at).total_seconds():.0f}"
            if crashed
            else "never",
            final=ended.state_name,
            lost=int(runs[job.id] == 0),
            duplicated=max(0, runs[job.id] - 1),
        )
        assert crashed, [s.name for s in ended.timeline]
        assert (crashed[0].timestamp - killed_at).total_seconds() < 45 + 30 + 30
        assert ended.state is JobState.COMPLETED and runs[job.id] == 1, ended.timeline
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(STOP_TIMEOUT)


@SLOW_FAULT
def test_two_process_workers_on_one_pool_run_each_job_once(
    faulty: LocalPlatform, ts: TaskScheduler, job_dir: Path
) -> None:
    """Two workers polling the same pool: each job runs exactly once.

    The jobs fall due in pairs at instants 0.37 s apart. Both workers poll once a second and
    take every run due within their prefetch at once, so jobs all due at one instant go whole
    to whichever worker's poll comes first (a CI run saw 16 of 16 go to one). Spread over the
    fractions of a second, some jobs fall first to each worker's poll, and a pair where the
    polls meet is raced for, with Prefect's Pending transition the only arbiter."""
    name, record = unique("two"), job_dir / "runs.txt"
    ts.create({"name": name, "code": RECORD, "parameters": {"path": str(record)}})
    second = f"second-{name}"
    process = start_extra_worker(faulty, "process", "process", second, job_dir / "second.log")
    try:
        wait_for(lambda: faulty._worker_online("process", second), timeout=90, what="2nd worker")
        at = now() + dt.timedelta(seconds=8)
        jobs = [ts.schedule(name, at + dt.timedelta(seconds=0.37 * (i // 2))) for i in range(16)]
        final_jobs(ts, name, len(jobs), timeout=300)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    runs = executions(record)
    duplicated = sum(n - 1 for n in runs.values() if n > 1)
    lost = sum(1 for j in jobs if runs[j.id] == 0)
    ran_by = collections.Counter(worker_of(ts, j.id, (faulty.worker_name, second)) for j in jobs)
    report(
        faults="2 process workers, 1 pool", jobs=len(jobs), lost=lost, duplicated=duplicated,
        ran_by_second=ran_by[second],
    )  # fmt: skip
    assert lost == 0 and duplicated == 0
    # Both workers took part: otherwise "once" would say nothing of two racing.
    assert ran_by[second] > 0 and ran_by[faulty.worker_name] > 0, ran_by


def _ticks(start: dt.datetime, end: dt.datetime, every: int) -> list[dt.datetime]:
    """The interval schedule's ticks in [start, end] (Prefect anchors intervals at the epoch)."""
    anchor = schedules.INTERVAL_ANCHOR
    first = int((start - anchor).total_seconds() // every) + 1
    last = int((end - anchor).total_seconds() // every)
    return [anchor + dt.timedelta(seconds=k * every) for k in range(first, last + 1)]


@SLOW_FAULT
def test_server_restart_during_scheduled_stream_runs_every_due_job_once(
    faulty: LocalPlatform, ts: TaskScheduler, job_dir: Path
) -> None:
    """The Prefect server (API and services) restarted mid-stream: every due tick runs, once."""
    name, record, every = unique("srv"), job_dir / "runs.txt", 4
    ts.create(
        {"name": name, "code": RECORD, "every": f"{every}s", "parameters": {"path": str(record)}}
    )
    start = now()
    time.sleep(12)
    down_at = time.monotonic()
    faulty.stop("prefect-server")
    time.sleep(5)
    faulty.start_server()
    downtime = time.monotonic() - down_at
    time.sleep(12)
    end = now()
    ts.pause(name)  # no new ticks; the ones before `end` must all run
    ticks = _ticks(start, end, every)

    def all_ended() -> list[models.Job] | None:
        jobs = [
            j
            for j in ts.jobs(task=name, limit=500)
            if j.scheduled_time and start < j.scheduled_time <= end
        ]
        return jobs if len(jobs) >= len(ticks) and all(settled(j) for j in jobs) else None

    jobs = wait_for(all_ended, timeout=480, interval=2.0, what="every tick ended")
    by_tick = collections.Counter(j.scheduled_time for j in jobs)
    runs = executions(record)
    duplicated = sum(n - 1 for n in by_tick.values() if n > 1) + sum(
        n - 1 for n in runs.values() if n > 1
    )
    lost = sum(1 for t in ticks if not any(j.scheduled_time == t and runs[j.id] for j in jobs))
    report(
        faults=f"prefect server restarted ({downtime:.0f}s down)",
        jobs=len(ticks),
        lost=lost,
        duplicated=duplicated,
    )
    assert lost == 0 and duplicated == 0


@SLOW_FAULT
def _sleep_to_between_ticks(since: dt.datetime, every: int) -> None:
    """Until a moment when every tick since ``since`` is later than the misfire grace and the
    late limit (5 s), and the next tick is far enough ahead for the thawed worker to pick the
    missed ones up before it falls due (seen: a pick-up 2 s after a thaw 1 s before a tick made
    the newest missed tick see a later one due, and skip itself)."""
    margin = dt.timedelta(seconds=FAULT_GRACE + 3)
    pickup = dt.timedelta(seconds=20)
    while True:
        last = _ticks(since, now(), every)[-1]
        time.sleep(max(0.0, (last + margin - now()).total_seconds()))
        upcoming = last + dt.timedelta(seconds=every)
        if upcoming - now() >= pickup:
            return
        time.sleep(max(0.0, (upcoming - now()).total_seconds()))


def test_misfire_policies_decide_what_runs_of_the_ticks_missed_while_down(
    faulty: LocalPlatform, ts: TaskScheduler, job_dir: Path
) -> None:
    """Worker down for 2+ ticks: all runs them all, latest only the newest, skip none."""
    # 60 s: the worker, started 8 s after a tick, is online and has picked up the missed runs
    # (a start takes ~10 s here) before the next tick falls due. Not 30 s: every tick starts
    # up to four interpreters, and on a slow two-core machine (2026-11-27 evening) four every
    # 30 s on top of the missed ones was more than it could start, so the backlog only grew
    # (jobs started 7-8 min late) and the test ran out of time.
    every = 60
    tasks = {policy: unique(f"mis-{policy}") for policy in ("all", "latest", "skip")}
    records = {policy: job_dir / f"{policy}.txt" for policy in tasks}
    limited, limited_record = unique("late-limit"), job_dir / "limited.txt"
    # The worker is frozen rather than stopped: thawed, it polls at once, whereas a start
    # takes from 10 s to over a minute on a loaded two-core machine, and a tick falling due
    # during a slow start would be judged fresh, not missed.
    with frozen_worker(faulty):
        for policy, name in tasks.items():
            ts.create(
                {"name": name, "code": RECORD, "every": f"{every}s", "misfire": policy,
                 "parameters": {"path": str(records[policy])}}
            )  # fmt: skip
        ts.create(
            {"name": limited, "code": RECORD, "every": f"{every}s", "late_limit": "5s",
             "parameters": {"path": str(limited_record)}}
        )  # fmt: skip
        # Missed ticks count from when every task exists (creating four can take seconds here).
        down_at = now()
        time.sleep(2 * every + 5)
        _sleep_to_between_ticks(down_at, every)
    back_at = now()  # polling again: it picks up at once whatever is due
    missed = _ticks(down_at, back_at, every)
    outcome: dict[str, tuple[int, int]] = {}
    newest_ran: dict[str, bool] = {}
    details: dict[str, list[tuple[dt.datetime | None, str, str | None]]] = {}
    for policy, name in [*tasks.items(), ("late-limit", limited)]:
        final_jobs(ts, name, len(missed), timeout=300)
        wait_for(
            lambda n=name: all(  # type: ignore[misc]
                settled(j) for j in ts.jobs(task=n, limit=500)
                if j.scheduled_time and down_at < j.scheduled_time <= back_at
            ),
            timeout=300, interval=2.0, what=f"{name} missed ticks ended",
        )  # fmt: skip
        batch = [
            j
            for j in ts.jobs(task=name, limit=500)
            if j.scheduled_time and down_at < j.scheduled_time <= back_at
        ]
        ran = sum(1 for j in batch if j.state is JobState.COMPLETED)
        skipped = sum(1 for j in batch if j.state_name == "Skipped")
        outcome[policy] = (ran, skipped)
        details[policy] = [(j.scheduled_time, j.state_name, j.detail) for j in batch]
        newest = max(batch, key=lambda j: j.scheduled_time or down_at)
        newest_ran[policy] = newest.state is JobState.COMPLETED
        assert ran + skipped == len(batch), details[policy]
    ran_all, _ = outcome["all"]
    ran_latest, skipped_latest = outcome["latest"]
    ran_skip, _ = outcome["skip"]
    ran_limited, _ = outcome["late-limit"]
    report(
        faults=f"worker down {len(missed)} ticks",
        jobs=len(missed) * 4,
        misfire_all=f"{ran_all} ran",
        misfire_latest=f"{ran_latest} ran/{skipped_latest} skipped",
        misfire_skip=f"{ran_skip} ran",
        late_limit_5s=f"{ran_limited} ran",
        lost=len(missed) - ran_all,
        duplicated=sum(
            n - 1 for record in records.values() for n in executions(record).values() if n > 1
        ),
    )
    assert ran_all == len(missed)
    # "latest" runs the newest missed tick: all were picked up together when the worker came
    # back, and only the newest had no later tick due then (however long the starts took).
    assert (ran_latest, skipped_latest) == (1, len(missed) - 1), details["latest"]
    assert newest_ran["latest"], details["latest"]
    assert ran_skip == 0 and ran_limited == 0, details["skip"]
    # The ticks after the outage run, however slowly the backlog lets them start (judged at its
    # start rather than at pick-up, each could see the next tick due and skip itself).
    wait_for(
        lambda: any(
            j.state is JobState.COMPLETED and j.scheduled_time and j.scheduled_time > back_at
            for j in ts.jobs(task=tasks["latest"], limit=500)
        ),
        timeout=180, interval=2.0, what="a tick of the 'latest' task after the outage ran",
    )  # fmt: skip
    for policy in tasks:
        runs = executions(records[policy])
        assert all(n == 1 for n in runs.values()), f"{policy}: a job ran twice"


# ---- PostgreSQL restart: a cluster of this test's own -------------------------------------


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        pytest.fail("no PostgreSQL binaries under /usr/lib/postgresql", pytrace=False)
    return found[-1].parent


def _as_postgres(*command: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, timeout=300,
                   capture_output=True)  # fmt: skip


@pytest.fixture
def own_cluster() -> Iterator[tuple[str, int]]:
    """A throwaway PostgreSQL cluster (data dir, port); never the shared one."""
    bin_dir, port = _pg_bin(), free_port()
    data = Path(tempfile.mkdtemp(prefix="tasks-pg-"))
    shutil.chown(data, "postgres", "postgres")
    _as_postgres(str(bin_dir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "postgres")
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"
    pg_ctl = str(bin_dir / "pg_ctl")
    _as_postgres(
        pg_ctl, "-D", str(data / "db"), "-o", options, "-l", str(data / "log"), "-w", "start"
    )
    try:
        yield str(data / "db"), port
    finally:
        stop = [pg_ctl, "-D", str(data / "db"), "-m", "immediate", "stop"]
        subprocess.run(["runuser", "-u", "postgres", "--", *stop], check=False, timeout=60)
        shutil.rmtree(data, ignore_errors=True)


def _crashed_running(job: models.Job) -> bool:
    """Crashed after its code started: without retries, the watchdog leaves it there."""
    return job.state_name == "Crashed" and job.attempts > 0


# Its own platform's start, then up to TASKS_PENDING_TIMEOUT + 120 s of recovery: on a VM
# running at half speed (CI, 2026-12-02) it took 634 and 638 s, past SLOW_FAULT's 600, when a
# job claimed while PostgreSQL was down waited out the Pending timeout.
@pytest.mark.timeout(900)
def test_postgres_restart_under_load_loses_no_task_schedule_or_job(
    own_cluster: tuple[str, int], job_dir: Path
) -> None:
    """PostgreSQL restarted while jobs stream on the process and the fast lane, with the REST
    API up: the platform reconnects, nothing is lost or doubled, and the API answers again."""
    data, port = own_cluster
    settings = throwaway_settings(job_dir / "state").model_copy(
        update={"database_url": f"postgresql://postgres@127.0.0.1:{port}/tasks_pg_fault"}
    )
    platform = LocalPlatform(settings, FAULT_ENV, docker=False)
    pg_ctl = str(_pg_bin() / "pg_ctl")
    try:
        platform.up()
        with pointing_at(platform), TaskScheduler() as ts:
            streams = {  # name: (pool, seconds between ticks, record)
                unique("pg"): ("process", 4, job_dir / "process.txt"),
                unique("pg-fast"): ("fast", 2, job_dir / "fast.txt"),
            }
            for name, (pool, every, record) in streams.items():
                ts.create({"name": name, "code": RECORD, "every": f"{every}s", "pool": pool,
                           "parameters": {"path": str(record)}})  # fmt: skip
            others = [unique("keep") for _ in range(3)]
            for other in others:
                ts.create({"name": other, "code": RECORD, "cron": "0 3 * * *",
                           "parameters": {"path": str(job_dir / "never.txt")}})  # fmt: skip
            start = now()
            time.sleep(10)
            options = f"-p {port} -k {Path(data).parent} -c listen_addresses=127.0.0.1"
            # With its own log file: a server left on pg_ctl's output pipes keeps them open,
            # and waiting for pg_ctl's output would then never end.
            log = str(Path(data).parent / "log")
            _as_postgres(
                pg_ctl, "-D", data, "-m", "fast", "-w", "-l", log, "restart", "-o", options
            )
            time.sleep(14)
            end = now()

            seen: dict[str, str] = {}  # name: what the last look found, for a timeout's message

            def all_ended(name: str, every: int) -> list[models.Job] | None:
                try:
                    jobs = [j for j in ts.jobs(task=name, limit=500)
                            if j.scheduled_time and start < j.scheduled_time <= end]  # fmt: skip
                except Exception as exc:  # the server may still be reconnecting; said on timeout
                    seen[name] = f"the SDK said {exc!r}"
                    return None
                ticks = _ticks(start, end, every)
                # These tasks have no retries: a job that crashed once its code had started
                # (its process lost the database mid-run) ends there; the watchdog retries only
                # a crash before the code started (attempts 0), which settled() waits past.
                waiting = [j for j in jobs if not (settled(j) or _crashed_running(j))]
                seen[name] = f"{len(jobs)} jobs for {len(ticks)} ticks, not ended: " + ", ".join(
                    f"{j.id} {j.state} (due {j.scheduled_time:%H:%M:%S})" for j in waiting
                )
                return jobs if len(jobs) >= len(ticks) and not waiting else None

            # A job the worker claimed while PostgreSQL was down can be left Pending; the
            # watchdog crashes it after TASKS_PENDING_TIMEOUT and it is retried.
            # The streams recover together: one deadline for both, well inside the test's timeout,
            # so a stuck recovery fails with what the last look saw.
            recovery = time.monotonic() + int(FAULT_ENV["TASKS_PENDING_TIMEOUT"]) + 120
            duplicated = offered = crashed_running = 0
            lost: list[str] = []  # a tick with no job whose code ran, and its jobs' states
            for name, (_, every, record) in streams.items():
                jobs = wait_for(
                    lambda n=name, e=every: all_ended(n, e),  # type: ignore[misc]
                    timeout=max(recovery - time.monotonic(), 1.0),
                    interval=2.0,
                    what=lambda n=name: f"the ticks of {n} ended; last seen: {seen.get(n)}",  # type: ignore[misc]
                )
                ts.pause(name)
                ticks = _ticks(start, end, every)
                runs = executions(record)
                by_tick = collections.Counter(j.scheduled_time for j in jobs)
                offered += len(ticks)
                crashed_running += sum(1 for j in jobs if _crashed_running(j))
                for tick in ticks:
                    of_tick = [j for j in jobs if j.scheduled_time == tick]
                    if not any(runs[j.id] for j in of_tick):
                        lost.append(f"{name} {tick:%H:%M:%S}: " + ", ".join(
                            f"{j.id} {j.state_name} {j.detail!r}" for j in of_tick
                        ))  # fmt: skip
                duplicated += sum(n - 1 for n in by_tick.values() if n > 1) + sum(
                    n - 1 for n in runs.values() if n > 1
                )
            tasks_kept = {t.name for t in ts.list()} >= {*streams, *others}
            schedules_kept = all(len(ts.get(o).next_runs) >= 1 for o in others)
            token = platform.credentials.admin_token.get_secret_value()
            api = httpx.get(
                f"{platform.service_api_url}/v1/tasks/{others[0]}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
            report(
                faults="postgresql restarted (fast), process and fast lanes and the API running",
                jobs=offered,
                tasks_kept=tasks_kept,
                schedules_kept=schedules_kept,
                api_after=api.status_code,
                crashed_while_running=crashed_running,
                lost=len(lost),
                duplicated=duplicated,
            )
            assert tasks_kept and schedules_kept and api.status_code == 200
            assert not lost, f"ticks lost: {lost}"
            assert duplicated == 0
    finally:
        platform.down()
