"""Claiming due runs from Prefect, and proposing their states, exclusively and in bulk.

On the set-based path (the default) every poll is one ``claim`` call: the server moves up to
``claim_limit`` runs due within ``lookahead`` to Pending in one transaction, locking them with
``FOR UPDATE SKIP LOCKED``, so two workers never claim the same run. Runs of tasks with a
concurrency limit are left out of it (their slots are Prefect's leases); the answer names the
due ones, and those go Prefect's REST way below.

On Prefect's REST path a poll makes one ``get_scheduled_flow_runs`` call, then bulk
``Scheduled → Pending`` claims of up to 50 runs per call. The server locks each run and aborts
a second ``→ Pending`` (``PreventPendingTransitions``), so of two workers racing for a run
exactly one gets ``ACCEPT``; only that one ever runs it. A bulk call's runs share one proposed
state on the server, so each run is held to its own time (``jobs.own_time``), and a run of a
task with a concurrency limit gets each state in a call of its own (``Proposals``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import uuid
from collections.abc import Collection, Iterable, Sequence

import httpx

from taskscheduler._prefect import rest as _api
from taskscheduler._prefect.rest import ACCEPT, JSON
from taskscheduler.fastlane.jobs import Job, own_time
from taskscheduler.fastlane.loop import Loop
from taskscheduler.fastlane.reporter import Reporter
from taskscheduler.fastlane.settings import FastLaneSettings

log = logging.getLogger("taskscheduler.fastlane")

# Seconds the list of concurrency-limited deployments is trusted (see limited_deployments).
LIMITS_MAX_AGE = 10.0


class Proposals:
    """State proposals for the runs of this worker, and which runs need a call of their own."""

    def __init__(self, api: _api.Api) -> None:
        self.api = api
        self.alone: set[str] = set()  # runs of limited deployments: proposed states one by one

    def forget(self, run_ids: Iterable[str]) -> None:
        """Runs whose last state this worker has proposed."""
        self.alone.difference_update(run_ids)

    async def propose(self, run_ids: list[str], state: JSON) -> dict[str, JSON]:
        """One state for up to 50 runs: one bulk call, and one call per run of a limited task.

        Each call is retried once on a transport error with the same transition id. If the
        first was applied but its answer lost, the server rejects the repeat as a duplicate
        of the current state (``PreventDuplicateTransitions``), which ``won`` then recognises
        by its transition id; without that the run would stay Pending forever.
        """
        together = [i for i in run_ids if i not in self.alone]
        calls = ([together] if together else []) + [[i] for i in run_ids if i in self.alone]
        results: dict[str, JSON] = {}
        for answer in await asyncio.gather(*(self._bulk(ids, state) for ids in calls)):
            results.update(answer)
        return results

    async def _bulk(self, run_ids: list[str], state: JSON) -> dict[str, JSON]:
        try:
            return await self.api.bulk_set_state(run_ids, state)
        except httpx.TransportError as exc:
            log.warning("state change failed (%s); trying once more", exc)
            return await self.api.bulk_set_state(run_ids, state)

    @staticmethod
    def won(result: JSON, state: JSON) -> bool:
        """Whether ``state`` (with a transition id) is the run's state after ``result``."""
        if result["status"] == ACCEPT:
            return True
        current = result.get("state") or {}
        ours = state["state_details"]["transition_id"]
        return bool(
            current.get("type") == state["type"]
            and (current.get("state_details") or {}).get("transition_id") == ours
        )


class Claims:
    """Which runs this worker takes from its pool, and the deployments' limits it knows."""

    def __init__(
        self,
        settings: FastLaneSettings,
        api: _api.Api,
        loop: Loop,
        proposals: Proposals,
        reporter: Reporter,
    ) -> None:
        self.settings = settings
        self.api = api
        self.loop = loop
        self.proposals = proposals
        self.reporter = reporter
        self.limited: frozenset[str] = frozenset()  # deployments with a concurrency limit
        self.limits_read_at = -math.inf
        self.known: set[str] = set()  # deployments seen in claims; a new one rereads limits

    async def poll(self, *owned: Collection[str]) -> list[Job]:
        """Claim the runs due within ``lookahead`` that are none of ``owned`` (held, running);
        the jobs this worker won."""
        busy = sum(len(ids) for ids in owned)
        if busy >= self.settings.max_held:
            return []
        before = time.time() + self.settings.lookahead
        limit = min(self.settings.claim_limit, self.settings.max_held - busy)
        if not self.settings.set_based:
            return await self.claim_rest(before, limit, owned)
        answer = await self.claim_set(before, limit)
        claimed_at = time.time()
        jobs = self.jobs(
            [(_claimed_run(c), str(c["pending_state_id"])) for c in answer["claimed"]],
            claimed_at,
        )
        if answer["cancelled_orphans"]:
            log.info("cancelled %d runs of deleted tasks", answer["cancelled_orphans"])
        if answer["limited"] and not self.loop.stopped:
            limited = {str(i) for i in answer["limited"]}
            jobs += await self.claim_rest(before, limit, owned, only=limited)
        return jobs

    async def claim_set(self, before: float, limit: int) -> JSON:
        """One set-based claim, sent again on a transport error as a repeat of the same claim
        (so runs it moved to Pending are never left without a holder)."""
        transition_id = str(uuid.uuid4())
        pool = self.settings.pool
        try:
            return await self.api.fast_claim(pool, before, limit, transition_id)
        except httpx.TransportError as exc:
            log.warning("claim failed (%s); repeating it", exc)
            return await self.api.fast_claim(pool, before, limit, transition_id, repeat=True)
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 404:
                log.error(
                    "the Prefect server has no set-based endpoints (%s): serve it with"
                    " `python -m taskscheduler._prefect.server`, or set"
                    " TASKS_FAST_SET_BASED=false for Prefect's REST path",
                    _api.FAST,
                )
            raise

    def jobs(self, runs: Sequence[tuple[JSON, str | None]], claimed_at: float) -> list[Job]:
        """The jobs of runs just claimed (with their Pending state id on the set-based path);
        a run that is not a job's is ours now, so it is ended here rather than held."""
        claimed: list[Job] = []
        for run, state_id in runs:
            try:
                claimed.append(Job.claimed_run(run, claimed_at, state_id))
            except ValueError as exc:
                message = f"Not a job the fast worker can run: {exc}"
                log.warning("claimed %s but %s", run["id"], message)
                self.reporter.final(run["id"], {"type": "FAILED", "message": message})
        return claimed

    async def claim_rest(
        self,
        before: float,
        limit: int,
        owned: tuple[Collection[str], ...],
        *,
        only: set[str] | None = None,
    ) -> list[Job]:
        """Claim through Prefect's REST orchestration: the due runs, or ``only`` those of them."""
        runs = await self.api.scheduled_runs(self.settings.pool, before, limit)
        fresh = [
            r
            for r in runs
            if not any(r["id"] in ids for ids in owned) and (only is None or r["id"] in only)
        ]
        if not fresh or self.loop.stopped:
            return []
        random.shuffle(fresh)  # two workers on one pool collide less when they race
        by_id = {r["id"]: r for r in fresh}
        deployments = {str(d) for r in fresh if (d := r.get("deployment_id"))}
        limited = await self.limited_deployments(new=bool(deployments - self.known))
        self.known |= deployments
        self.proposals.alone.update(r["id"] for r in fresh if r.get("deployment_id") in limited)
        parts = _api.chunks(list(by_id))
        results = await asyncio.gather(*(self.claim([by_id[i] for i in part]) for part in parts))
        won = [(by_id[run_id], None) for result in results for run_id in result]
        return self.jobs(won, time.time())

    async def limited_deployments(self, *, new: bool) -> frozenset[str]:
        """The deployments with a concurrency limit, read again when ``new`` ones appear among
        the runs to claim, and at least every ``LIMITS_MAX_AGE``.

        Their runs get every state in a call of their own (``Proposals.propose``): the runs of
        a bulk call share one proposed state, and Prefect writes a limited run's concurrency
        lease into it (``SecureFlowConcurrencySlots`` on Pending,
        ``PreserveDeploymentConcurrencyLeaseId`` after), so a run orchestrated after it in the
        same call would carry that lease and release it when it ends, letting a second job of
        the limited task start. Prefect names a deployment's limit ``deployment:<id>``. A task
        created with a limit is known from its first run on; a limit added to an existing one
        within the last ``LIMITS_MAX_AGE`` is not yet.
        """
        if new or time.monotonic() - self.limits_read_at > LIMITS_MAX_AGE:
            names = await self.api.concurrency_limit_names()
            prefix = "deployment:"
            self.limited = frozenset(n.removeprefix(prefix) for n in names if n.startswith(prefix))
            self.limits_read_at = time.monotonic()
        return self.limited

    async def claim(self, runs: list[JSON]) -> dict[str, JSON]:
        """``Scheduled → Pending`` for up to 50 runs; the outcomes of those we won.

        The Pending state names the earliest of the runs' own times as its scheduled time.
        Prefect 3.9's ``bulk_set_state`` shares one proposed state among the runs of a call,
        so left empty, the time its ``CopyScheduledTime`` copies from the first run orchestrated
        lands in every Pending state of the call (a bench run found 904 Pending states with
        94 distinct times, 2.8 s early to 1.8 s late). Later than a run's own time, it would
        make ``WaitForScheduledTime`` hold that run's ``Running`` past its instant; the
        earliest never does. Each run is held to its own time by this worker (``own_time``).
        """
        earliest = min(own_time(run) for run in runs)
        state = {
            "type": "PENDING",
            "state_details": {
                "transition_id": str(uuid.uuid4()),
                "scheduled_time": _api.iso(earliest),
            },
        }
        results = await self.proposals.propose([run["id"] for run in runs], state)
        return {run_id: r for run_id, r in results.items() if self.proposals.won(r, state)}

    async def moved(self, run_ids: list[str]) -> dict[str, str | None]:
        """Those of ``run_ids`` no longer Pending, with the state they are in."""
        if not run_ids:
            return {}
        return {
            str(r["id"]): r.get("state_type")
            for r in await self.api.runs_not_in(run_ids, ["PENDING"])
        }

    async def hand_back(self, job: Job) -> None:
        """Give a held run back to the pool at its own time, for another worker to claim."""
        state = {
            "type": "SCHEDULED",
            "name": "Scheduled" if job.attempt == 1 else "AwaitingRetry",
            "message": f"Handed back by stopping fast worker {self.settings.name}",
            "state_details": {"scheduled_time": _api.iso(job.due)},
        }
        await self.api.set_state(job.id, state, force=True)


def _claimed_run(claimed: JSON) -> JSON:
    """A run the set-based claim answered, in the shape Prefect's API gives runs."""
    return {
        "id": str(claimed["id"]),
        "next_scheduled_start_time": claimed["scheduled_time"],
        "expected_start_time": claimed["expected_start_time"],
        "deployment_id": claimed["deployment_id"],
        "parameters": claimed["parameters"],
        "run_count": claimed["run_count"],
        "auto_scheduled": claimed["auto_scheduled"],
    }
