"""Taking back what a multi-step write did when a later step fails, newest first.

Prefect has no transaction across calls: a task's update is a new code-version block document,
then the deployment's update, then its next runs, each its own request. When a later step
failed, the earlier ones stayed (a create once left its task behind this way; creating is now
one transaction of our server extension, ``_prefect/server/new_deployments.py``). Each step
that wrote something says how to take it back; when the block fails, those undo steps run in
reverse order, each on its own (one failing is logged and does not stop the others), to the end
even when the caller is cancelled meanwhile, and then the original error goes on as if nothing
had been caught.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType

import anyio

log = logging.getLogger(__name__)

__all__ = ["Compensation"]


class Compensation:
    """Undo steps of one write (``what``, for the log), run when its ``async with`` fails."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._steps: list[tuple[str, Callable[[], Awaitable[object]]]] = []

    def push(self, step: str, undo: Callable[[], Awaitable[object]]) -> None:
        """After ``step`` wrote something: how to take it back."""
        self._steps.append((step, undo))

    async def __aenter__(self) -> Compensation:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            return
        undoing = asyncio.ensure_future(self._undo())
        cancelled = False
        # anyio's shield stops the cancellation Starlette's task groups deliver again and again;
        # asyncio.shield keeps a task.cancel() (Ctrl-C in the blocking SDK) from the undo steps.
        with anyio.CancelScope(shield=True):
            while not undoing.done():
                try:
                    await asyncio.shield(undoing)
                except asyncio.CancelledError:
                    cancelled = True
        if cancelled and not isinstance(exc, asyncio.CancelledError):
            raise asyncio.CancelledError from exc  # the cancellation is not lost

    async def _undo(self) -> None:
        for step, undo in reversed(self._steps):
            try:
                await undo()
            except Exception:
                log.exception("could not take back the %s of a failed %s", step, self.what)
