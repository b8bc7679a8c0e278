"""The job gateway's refusals, in the audit log without letting a job flood it.

A job that asks for what it may not have is worth a row: someone's code is probing the
platform. A job that asks a thousand times is worth one row and a count. Per caller (a run,
or an address for calls without a valid credential) and reason, the first refusal of a window
is written at once; the others are counted and written as one summary row when the window
closes (checked on each refusal and by ``flush``). Memory is bounded: past ``max_keys`` callers
in one window, the rest share one key.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from taskscheduler import audit

log = logging.getLogger("taskscheduler.gate")

WINDOW_SECONDS = 60.0
MAX_KEYS = 10_000
ACTION = "gate.refuse"
_OVERFLOW = ("*", "*")


@dataclasses.dataclass
class _Window:
    opened: float
    first: str  # what the first refusal was about
    more: int = 0


class Refusals:
    """Counts refusals per caller and reason, writing at most two rows per window."""

    def __init__(
        self,
        sink: audit.AuditSink,
        *,
        window: float = WINDOW_SECONDS,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.sink = sink
        self.window = window
        self.max_keys = max_keys
        self.windows: dict[tuple[str, str], _Window] = {}
        self.lock = asyncio.Lock()

    async def note(self, run_id: str | None, what: str, reason: str, *, client: str | None) -> None:
        """One refusal of ``what`` (a method and path, or an event) for ``reason``."""
        caller = run_id or f"address {client or 'unknown'}"
        key = (caller, reason)
        now = time.monotonic()
        async with self.lock:
            await self._close_expired(now)
            window = self.windows.get(key)
            if window is None and len(self.windows) >= self.max_keys:
                key = _OVERFLOW
                window = self.windows.get(key)
            if window is not None:
                window.more += 1
                return
            self.windows[key] = _Window(opened=now, first=what)
        await self._write(key, f"{what}: {reason}", run_id)

    async def flush(self, *, everything: bool = False) -> None:
        """Write the summaries of the windows that have closed (all of them on shutdown)."""
        async with self.lock:
            await self._close_expired(float("inf") if everything else time.monotonic())

    async def _close_expired(self, now: float) -> None:
        for key, window in list(self.windows.items()):
            if now - window.opened < self.window:
                continue
            del self.windows[key]
            if window.more:
                caller, reason = key
                run_id = caller if not caller.startswith("address ") and caller != "*" else None
                detail = f"{window.more} more refused since the first ({window.first}): {reason}"
                await self._write(key, detail, run_id)

    async def _write(self, key: tuple[str, str], detail: str, run_id: str | None) -> None:
        caller, _ = key
        actor = audit.Actor(
            kind="job" if run_id else "anonymous",
            id=run_id,
            name=f"job {run_id}" if run_id else caller,
            source="gateway",
        )
        outcome = "forbidden" if run_id else "unauthorized"
        entry = audit.AuditEntry.of(actor, ACTION, outcome, job=run_id, detail=detail)
        try:
            await self.sink.record(entry)
        except Exception:
            log.exception("could not write the audit row of a refusal (%s)", detail)
