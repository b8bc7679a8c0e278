"""What the loops of one fast worker share: the stop and wake signals, the tasks in flight."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any


class Loop:
    """The stop signal, the wake-up of the release loop, and the starts and spawns in flight."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self.wake = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()

    @property
    def stopped(self) -> bool:
        return self.stopping.is_set()

    def stop(self) -> None:
        """Ask every loop to stop (safe from a signal handler)."""
        self.stopping.set()
        self.wake.set()

    def track(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` as a task counted among those in flight until it ends."""
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def wait(self, timeout: float | None) -> None:
        """Sleep until woken (new run, free process, stop) or ``timeout`` seconds pass."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout)
        self.wake.clear()

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if asked to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)
