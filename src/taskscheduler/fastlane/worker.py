"""The fast worker: claims runs ahead, holds each to its instant, runs it in a warm process.

It is made of collaborators, each owning its state: ``claims`` (claiming due runs from
Prefect, proposing their states), ``release`` (the held runs and their start), ``children``
(the warm processes), ``jobs`` (one job's life: its attempt and how it ends) and ``reporter``
(logs and final states, batched). ``FastWorker`` composes them and runs their loops.

One asyncio loop drives six small loops, each batching what many runs need. On the set-based
path (the default; ``_prefect.server.fastpath`` in the server) claims, starts and completions
are one transaction per set of runs; on Prefect's REST path (``set_based=False``) they are bulk
calls the server orchestrates run by run:

1. **poll** (every ``poll_interval``): one set-based ``claim`` of the runs due within
   ``lookahead`` (``FOR UPDATE SKIP LOCKED``: two workers never claim the same run), plus, for
   runs of concurrency-limited tasks, Prefect's own claim one run a call. On the REST path: one
   ``get_scheduled_flow_runs`` call, then bulk ``Scheduled → Pending`` claims of up to 50 runs;
   ``PreventPendingTransitions`` makes each exclusive. Each run is held to its own time.
2. **release**: a timer on the earliest held run. At its instant (wall clock, never early)
   every due run that has a free warm process is moved ``Pending → Running`` in one call; the
   code starts only once the server has accepted. The set-based start is conditional on the
   claim's Pending state, so a run cancelled while held never starts. On the REST path Prefect
   accepts ``Running`` even from ``Cancelled``, so each run is first checked to be still
   Pending, ``check_ahead`` seconds before its time (the **check** loop) or in its batch.
3. **report** (every ``flush_interval``): the output lines of all jobs, then all ``Completed``
   states — one set-based ``finish`` (or ``POST /logs/`` and bulk calls); failures and retries
   carry their own message and go one call each. Logs always precede the final state they
   belong to.
4. **watch** (every ``watch_interval``): one filter call for running runs that left Running
   behind our back (cancelled, rescheduled); a cancelled running job's process is killed and
   the run set ``Cancelled``. Held runs are not watched: they are checked once, just before
   their release (see 2).
5. **heartbeat**: the worker shows as online in the pool's workers list.

Per job this makes three transitions (Pending, Running, final), each shared with the other
runs of its batch, plus a share of the watch calls.

A failed attempt with retries left becomes ``AwaitingRetry`` (a Scheduled state at the retry
time) and goes back through the same exclusive claim, by whichever fast worker polls first;
the next attempt is named ``Retrying``. A timed-out attempt (``timeout`` per attempt) or a
cancelled job has its process killed and replaced; a process that dies by itself marks its
job ``Crashed``. On SIGTERM held runs are handed back (``Scheduled`` at their time) and running
ones get ``shutdown_grace`` seconds before they are killed and marked ``Crashed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

import httpx

from taskscheduler._prefect import rest as _api
from taskscheduler.fastlane.children import Children
from taskscheduler.fastlane.claims import Claims, Proposals
from taskscheduler.fastlane.jobs import Job, Jobs
from taskscheduler.fastlane.loop import Loop
from taskscheduler.fastlane.release import Release
from taskscheduler.fastlane.reporter import Reporter
from taskscheduler.fastlane.settings import FastLaneSettings
from taskscheduler.sandbox.limits import Cgroups

log = logging.getLogger("taskscheduler.fastlane")


def _delegated_cgroups(settings: FastLaneSettings) -> Cgroups | None:
    """The cgroups the sandbox lane's limits are written to, if it has usable ones."""
    if not settings.single_use or settings.cgroup is None:
        return None
    cgroups = Cgroups(settings.cgroup)
    return cgroups if cgroups.usable() else None


def _limits_text(settings: FastLaneSettings, cgroups: Cgroups | None) -> str:
    if not settings.single_use:
        return ""
    if cgroups is not None:
        return ", single-use, limits by cgroups (memory, CPU, processes)"
    return (
        ", single-use, WITHOUT cgroups (none delegated or usable): each sandbox caps only its"
        " address space; CPU share and process count are not limited"
    )


__all__ = ["FastWorker", "Job"]


class FastWorker:
    """A fast lane worker on one work pool."""

    def __init__(
        self, settings: FastLaneSettings, api: _api.Api, *, cwd: Path | None = None
    ) -> None:
        self.settings = settings
        self.api = api
        self.loop = Loop()
        self.proposals = Proposals(api)
        self.reporter = Reporter(api, self.proposals, set_based=settings.set_based)
        self.jobs = Jobs(settings, api, self.reporter)
        self.children = Children(
            settings.processes,
            self.loop,
            cwd or Path.cwd(),
            self.reporter,
            self.jobs,
            single_use=settings.single_use,
            most=settings.max_processes if settings.single_use else None,
            cgroups=_delegated_cgroups(settings),
        )
        self.claims = Claims(settings, api, self.loop, self.proposals, self.reporter)
        self.release = Release(
            settings,
            self.loop,
            self.claims,
            self.proposals,
            self.children,
            self.jobs,
            self.reporter,
        )

    @classmethod
    def at(
        cls,
        settings: FastLaneSettings,
        api_url: str,
        *,
        headers: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> FastWorker:
        """A fast worker speaking to the Prefect API at ``api_url``."""
        api = _api.Api(api_url, timeout=settings.http_timeout, headers=headers)
        return cls(settings, api, cwd=cwd)

    async def run(self) -> None:
        """Serve the pool until ``stop()``; then hand back, finish or crash what is ours."""
        # Online at once; the warm processes start meanwhile (seconds each on a busy machine).
        # Runs claimed before one is ready are simply held until it is.
        await self.api.heartbeat(
            self.settings.pool, self.settings.name, self.settings.heartbeat_interval
        )
        self.children.start()
        log.info(
            "fast worker %s serving pool %r with %d warm processes%s",
            self.settings.name,
            self.settings.pool,
            self.settings.processes,
            _limits_text(self.settings, self.children.cgroups),
        )
        loops = [
            asyncio.create_task(loop)
            for loop in (
                self._poll_loop(),
                self.release.run(),
                self.release.check(),
                self.reporter.run(self.loop, self.settings.flush_interval),
                self.jobs.watch(self.loop),
                self._heartbeat_loop(),
            )
        ]
        await self.loop.stopping.wait()
        self.loop.wake.set()
        await asyncio.gather(*loops, return_exceptions=True)
        await self._shutdown()

    def stop(self) -> None:
        """Ask the worker to stop (safe from a signal handler)."""
        self.loop.stop()

    async def poll(self) -> None:
        """Claim the runs due soon and hold them; read their code and secrets meanwhile."""
        claimed = await self.claims.poll(self.release.held, self.jobs.running)
        for job in claimed:
            self.release.hold(job)
        if self.settings.single_use:  # a warm sandbox for each run held ahead
            self.children.want(len(self.release.held) + len(self.jobs.running))
        if claimed:
            self.loop.wake.set()
            await self.jobs.load_codes(claimed)

    async def _poll_loop(self) -> None:
        while not self.loop.stopped:
            started = time.monotonic()
            try:
                await self.poll()
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                log.warning("polling for scheduled runs failed: %s", exc)
            await self.loop.sleep(self.settings.poll_interval - (time.monotonic() - started))

    async def _heartbeat_loop(self) -> None:
        last_run_beat = time.monotonic()
        while not self.loop.stopped:
            await self.loop.sleep(self.settings.heartbeat_interval)
            with contextlib.suppress(httpx.HTTPError):
                await self.api.heartbeat(
                    self.settings.pool, self.settings.name, self.settings.heartbeat_interval
                )
            if time.monotonic() - last_run_beat >= self.settings.run_heartbeat_interval:
                last_run_beat = time.monotonic()
                with contextlib.suppress(httpx.HTTPError):
                    await self.api.run_heartbeats(list(self.jobs.running))

    async def _shutdown(self) -> None:
        held = self.release.take_all()
        await asyncio.gather(*(self.claims.hand_back(job) for job in held), return_exceptions=True)
        deadline = time.monotonic() + self.settings.shutdown_grace
        while (self.jobs.running or self.loop.tasks) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.jobs.kill_all("shutdown")
        await self.children.close()
        await self.reporter.flush()
        await self.api.close()
