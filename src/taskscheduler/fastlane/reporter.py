"""What the fast worker tells Prefect of its jobs: their log lines and final states, batched.

Every ``flush_interval`` the output lines of all jobs go in one ``POST /logs/`` (chunks of
``LOG_CHUNK``), then all ``Completed`` states in bulk calls; failures and retries carry their
own message and go one call each. Logs always precede the final state they belong to: if the
logs cannot be sent, they are kept and no final state goes either.
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
COMPLETED: JSON = {"type": "COMPLETED"}


class Reporter:
    """The log lines and final states not yet sent, and their sending."""

    def __init__(self, api: _api.Api, proposals: Proposals) -> None:
        self.api = api
        self.proposals = proposals
        self.logs: list[JSON] = []
        self.finals: list[tuple[str, JSON]] = []

    def log(
        self, run_id: str, level: int, name: str, message: str, ts: float | None = None
    ) -> None:
        """One log line of a run, stamped ``ts`` (default now)."""
        self.logs.append(
            {
                "name": name,
                "level": level,
                "message": message,
                "timestamp": _api.iso(ts if ts is not None else time.time()),
                "flow_run_id": run_id,
            }
        )

    def final(self, run_id: str, state: JSON) -> None:
        """The state a run ends in (or a retry's Scheduled state), sent with the next flush."""
        self.finals.append((run_id, state))

    async def run(self, loop: Loop, interval: float) -> None:
        """Flush every ``interval`` seconds until the worker stops."""
        while not loop.stopped:
            await loop.sleep(interval)
            await self.flush()

    async def flush(self) -> None:
        """Send the logs, then the final states (so whoever sees a run end finds its logs)."""
        logs, self.logs = self.logs, []
        try:
            for i in range(0, len(logs), LOG_CHUNK):
                await self.api.create_logs(logs[i : i + LOG_CHUNK])
        except httpx.HTTPError as exc:
            log.warning("sending %d log lines failed: %s; keeping them", len(logs), exc)
            self.logs[:0] = logs
            return
        finals, self.finals = self.finals, []
        completed = [run_id for run_id, s in finals if s == COMPLETED]
        others = [(run_id, s) for run_id, s in finals if s != COMPLETED]
        # With a transition id, a repeat after a lost answer is refused, not a second state.
        done = {"type": "COMPLETED", "state_details": {"transition_id": str(uuid.uuid4())}}
        calls: list[Coroutine[Any, Any, JSON]] = [
            self.proposals.propose(part, done) for part in _api.chunks(completed)
        ]
        calls += [self.api.set_state(run_id, s) for run_id, s in others]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        self.proposals.forget(run_id for run_id, _ in finals)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                log.warning("reporting final states failed: %s", outcome)
