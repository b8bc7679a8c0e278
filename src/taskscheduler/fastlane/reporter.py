"""What the fast worker tells Prefect of its jobs: their log lines and final states, batched.

Every ``flush_interval`` the output lines of all jobs are sent, then the ``Completed`` states:
on the set-based path both in one ``finish`` call (one transaction; chunks of ``LOG_CHUNK``
lines and ``FINISH_CHUNK`` runs), on Prefect's REST path in one ``POST /logs/`` and bulk state
calls. Failures and retries carry their own message and go one call each. Logs always precede
the final state they belong to: if the logs cannot be sent, they are kept and no final state
goes either. On the set-based path each line carries an id, so a line resent after a lost
answer is stored once.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import httpx

from taskscheduler._prefect import rest as _api
from taskscheduler._prefect.rest import JSON
from taskscheduler.fastlane.loop import Loop

if TYPE_CHECKING:
    from taskscheduler.fastlane.claims import Proposals

log = logging.getLogger("taskscheduler.fastlane")

LOG_CHUNK = 1000
FINISH_CHUNK = 1000
COMPLETED: JSON = {"type": "COMPLETED"}


class Reporter:
    """The log lines and final states not yet sent, and their sending."""

    def __init__(self, api: _api.Api, proposals: Proposals, *, set_based: bool) -> None:
        self.api = api
        self.proposals = proposals
        self.set_based = set_based
        self.logs: list[JSON] = []
        # (run id, state, its Running state id on the set-based path)
        self.finals: list[tuple[str, JSON, str | None]] = []

    def log(
        self, run_id: str, level: int, name: str, message: str, ts: float | None = None
    ) -> None:
        """One log line of a run, stamped ``ts`` (default now)."""
        line: JSON = {
            "name": name,
            "level": level,
            "message": message,
            "timestamp": _api.iso(ts if ts is not None else time.time()),
            "flow_run_id": run_id,
        }
        if self.set_based:
            line["id"] = str(uuid.uuid4())
        self.logs.append(line)

    def final(self, run_id: str, state: JSON, *, running: str | None = None) -> None:
        """The state a run ends in (or a retry's Scheduled state), sent with the next flush;
        ``running``: the run's Running state id, if the set-based path started it."""
        self.finals.append((run_id, state, running))

    async def run(self, loop: Loop, interval: float) -> None:
        """Flush every ``interval`` seconds until the worker stops."""
        while not loop.stopped:
            await loop.sleep(interval)
            await self.flush()

    async def flush(self) -> None:
        """Send the logs, then the final states (so whoever sees a run end finds its logs)."""
        logs, self.logs = self.logs, []
        finals, self.finals = self.finals, []
        finished = [(r, running) for r, s, running in finals if s == COMPLETED and running]
        try:
            if self.set_based:
                await self._finish(logs, finished)
            else:
                for i in range(0, len(logs), LOG_CHUNK):
                    await self.api.create_logs(logs[i : i + LOG_CHUNK])
        except httpx.HTTPError as exc:
            log.warning("sending %d log lines failed: %s; keeping them", len(logs), exc)
            self.logs[:0] = logs
            self.finals[:0] = finals
            return
        self.proposals.forget(run_id for run_id, _ in finished)
        rest = [(r, s) for r, s, running in finals if not (s == COMPLETED and running)]
        completed = [run_id for run_id, s in rest if s == COMPLETED]
        others = [(run_id, s) for run_id, s in rest if s != COMPLETED]
        # With a transition id, a repeat after a lost answer is refused, not a second state.
        done = {"type": "COMPLETED", "state_details": {"transition_id": str(uuid.uuid4())}}
        calls: list[Coroutine[Any, Any, JSON]] = [
            self.proposals.propose(part, done) for part in _api.chunks(completed)
        ]
        calls += [self.api.set_state(run_id, s) for run_id, s in others]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        self.proposals.forget(run_id for run_id, _ in rest)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                log.warning("reporting final states failed: %s", outcome)

    async def _finish(self, logs: list[JSON], finished: list[tuple[str, str]]) -> None:
        """Logs and completions through the set-based path: every chunk of lines but the last
        alone, the last with the first chunk of runs, so each run's lines precede its end."""
        line_chunks = [logs[i : i + LOG_CHUNK] for i in range(0, len(logs), LOG_CHUNK)] or [[]]
        runs = [{"id": r, "state_id": running} for r, running in finished]
        run_chunks = [runs[i : i + FINISH_CHUNK] for i in range(0, len(runs), FINISH_CHUNK)]
        calls: list[tuple[list[JSON], list[JSON]]] = [(lines, []) for lines in line_chunks[:-1]]
        calls.append((line_chunks[-1], run_chunks[0] if run_chunks else []))
        calls += [([], chunk) for chunk in run_chunks[1:]]
        for lines, moves in calls:
            if lines or moves:
                await self.api.fast_finish(moves, lines, str(uuid.uuid4()))
