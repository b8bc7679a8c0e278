"""The warm processes of the fast worker: sandboxes that run one job at a time.

Each is started (``python -m taskscheduler.runtime.warm``) in a sandbox with no network and no
credential, reports ``ready``, then runs the jobs it is sent and reports their log lines and
ends (the protocol is described in ``runtime.warm``). A process that exits is replaced; one that
exits during start-up is replaced after ``RESPAWN_BACKOFF`` seconds.

On the sandbox lane (``single_use``) each process runs exactly one job and exits; its
replacement starts at once and waits warm for the next. ``count`` sandboxes are kept, more when
more runs are held ahead (``want``, up to ``most``), so a burst due at one instant finds a warm
sandbox for each of its jobs. Each sandbox has cgroups of its own (``sandbox.limits``) that the
job's limits are written to just before its code is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from pathlib import Path

from taskscheduler._prefect.rest import JSON
from taskscheduler.fastlane.jobs import Job, Jobs
from taskscheduler.fastlane.loop import Loop
from taskscheduler.fastlane.reporter import Reporter
from taskscheduler.sandbox import launch
from taskscheduler.sandbox.limits import Cgroups, Limits, SandboxCgroup

log = logging.getLogger("taskscheduler.fastlane")

CHILD_MODULE = "taskscheduler.runtime.warm"
CHILD_LINE_LIMIT = 4 * 1024 * 1024
RESPAWN_BACKOFF = 1.0


class Child:
    """One warm interpreter and the job it runs, if any."""

    def __init__(
        self, process: asyncio.subprocess.Process, cgroup: SandboxCgroup | None = None
    ) -> None:
        self.process = process
        self.cgroup = cgroup
        self.job: Job | None = None
        self.ready = asyncio.Event()

    def limit(self, limits: Limits) -> dict[str, int]:
        """Hold this sandbox to ``limits``: by its cgroups, else the rlimits it must lower in
        itself (returned, for the job's run message)."""
        if self.cgroup is None:
            return limits.rlimits()
        self.cgroup.apply(limits)
        return {}

    async def send(self, message: JSON) -> None:
        """Write one protocol line to the process."""
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        await self.process.stdin.drain()

    def kill(self) -> None:
        """SIGKILL the process (its reader then reports the exit)."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()


class Children:
    """The warm processes: which are alive, which are free, and what they report."""

    def __init__(
        self,
        count: int,
        loop: Loop,
        cwd: Path,
        reporter: Reporter,
        jobs: Jobs,
        *,
        single_use: bool = False,
        most: int | None = None,
        cgroups: Cgroups | None = None,
    ) -> None:
        self.count = count
        self.most = max(count, most or count)
        self.target = count  # processes to keep, warm or busy
        self.single_use = single_use
        self.cgroups = cgroups
        self.spawned = 0
        self.owned: set[str] = set()  # the cgroups of sandboxes starting or alive
        self.loop = loop
        self.cwd = cwd
        self.reporter = reporter
        self.jobs = jobs
        self.alive: set[Child] = set()
        self.idle: list[Child] = []
        self.readers: set[asyncio.Task[None]] = set()
        self.spawning = 0

    def start(self) -> None:
        """Start the warm processes (each takes seconds on a busy machine)."""
        self.fill()

    def want(self, jobs: int) -> None:
        """Keep a process for each of ``jobs`` (held and running), within ``count``…``most``."""
        self.target = max(self.count, min(jobs, self.most))
        self.fill()

    def fill(self) -> None:
        """Start processes until ``target`` are alive or starting."""
        for _ in range(self.target - len(self.alive) - self.spawning):
            self.spawning += 1  # counted at once: the next fill must not start it again
            self.loop.track(self.spawn())

    def take(self, job: Job) -> None:
        """Give ``job`` a free process (there must be one: see ``idle``)."""
        job.child = self.idle.pop()
        job.child.job = job

    def release(self, job: Job) -> None:
        """Take back the process given to a job that will not run in it after all."""
        child, job.child = job.child, None
        if child is not None:
            child.job = None
            self.free(child)

    def free(self, child: Child) -> None:
        if child in self.alive and child not in self.idle:
            self.idle.append(child)
            self.loop.wake.set()

    async def spawn(self) -> None:
        """Start one process; ``fill`` counted it in ``spawning`` until it is ready or gone."""
        cgroup: SandboxCgroup | None = None
        failed = False
        try:
            # A sandbox with no network and no credential: the worker reports for it.
            env = dict(os.environ)
            argv = [sys.executable, "-m", CHILD_MODULE]
            if self.single_use:
                argv.append("--single-use")
            command = launch.sandbox_of(env, door=False).command(argv)
            self.spawned += 1
            if self.cgroups is not None:
                self.cgroups.sweep(self.owned)
                cgroup = self.cgroups.create(f"sandbox-{os.getpid()}-{self.spawned}")
                self.owned.add(cgroup.name)
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                cwd=self.cwd,
                env=launch.job_environment(env, door=False),
                limit=CHILD_LINE_LIMIT,
                # In its cgroups before bubblewrap starts: whatever the job forks is held too.
                preexec_fn=cgroup.join if cgroup is not None else None,
            )
            child = Child(process, cgroup)
            self.alive.add(child)
            reader = asyncio.create_task(self.read(child))
            self.readers.add(reader)
            reader.add_done_callback(self.readers.discard)
            waiter = asyncio.create_task(child.ready.wait())
            await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        except (OSError, RuntimeError) as exc:
            log.error("starting a warm process failed: %s", exc)
            if cgroup is not None:
                self.owned.discard(cgroup.name)  # the next sweep removes it
            failed = True
        finally:
            self.spawning -= 1
        if failed and not self.loop.stopped:
            await asyncio.sleep(RESPAWN_BACKOFF)
            self.fill()

    async def read(self, child: Child) -> None:
        """Handle one process's messages until it exits, then account for its job."""
        assert child.process.stdout is not None
        while line := await child.process.stdout.readline():
            self.receive(child, json.loads(line))
        code = await child.process.wait()
        self.alive.discard(child)
        with contextlib.suppress(ValueError):
            self.idle.remove(child)
        job, child.job = child.job, None
        out_of_memory = child.cgroup is not None and child.cgroup.out_of_memory()
        if child.cgroup is not None:
            self.owned.discard(child.cgroup.name)
            child.cgroup.remove()  # if its last processes are still dying: the next sweep
        if job is not None:
            self.jobs.end_killed(job, code, out_of_memory=out_of_memory)
        if not self.loop.stopped:
            if not child.ready.is_set():
                log.error("a warm process exited during start-up (code %s)", code)
                await asyncio.sleep(RESPAWN_BACKOFF)
            self.fill()

    def receive(self, child: Child, message: JSON) -> None:
        """One protocol message from ``child``."""
        op = message.get("op")
        if op == "log":
            self.reporter.log(
                message["id"], message["level"], message["name"], message["message"], message["ts"]
            )
        elif op == "done":
            job = child.job
            if job is not None and job.id == message["id"] and job.killed is None:
                child.job = None
                self.jobs.end_attempt(job, ok=message["ok"], error=message.get("error"))
                if not self.single_use:  # a sandbox serves one job; it exits by itself
                    self.free(child)
        elif op == "ready":
            child.ready.set()
            self.free(child)

    async def close(self) -> None:
        """Stop the processes: idle ones by closing their input, the rest (after 5 s) killed."""
        for child in list(self.alive):
            if child.job is None and child.process.stdin is not None:
                child.process.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(c.process.wait() for c in list(self.alive))), 5.0
            )
        for child in list(self.alive):
            child.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self.readers, return_exceptions=True), 5.0)
