"""Refusals of anonymous callers reach the audit log at a bounded rate: the first of a window in
full, the rest as one summary row.

Why: every refusal of an unauthenticated caller (no or a bad token, a cross-site call, a body
too large or not a form) wrote an audit row, and the audit table is append-only: anyone who can
reach the API could grow it without limit. So, per client address and outcome, the first refusal
of a window is written as before; later ones in the window are only counted, and once the window
has closed (at the next anonymous refusal from anyone, or at the API's periodic sweep) one row
says how many there were. At most ``max_keys`` windows are open at once; refusals from further
addresses share one window per outcome under ``OTHERS``, so memory and the rows written per
window stay bounded whatever addresses callers use.

Pure bookkeeping on an injected clock; ``api.errors`` writes the rows.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

WINDOW_SECONDS = 60.0
MAX_KEYS = 1000
OTHERS = "other addresses"

__all__ = ["MAX_KEYS", "OTHERS", "WINDOW_SECONDS", "RefusalLimiter", "Summary"]


@dataclasses.dataclass(frozen=True)
class Summary:
    """The refusals of one address and outcome counted, not written, in a closed window."""

    address: str
    outcome: str
    count: int
    window_seconds: float


@dataclasses.dataclass
class _Window:
    opened: float
    counted: int = 0


class RefusalLimiter:
    """Which anonymous refusals to write in full, and what to summarise."""

    def __init__(
        self,
        *,
        window_seconds: float = WINDOW_SECONDS,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_seconds = window_seconds
        self.max_keys = max_keys
        self._clock = clock
        # Insertion order is opening order: a window is only ever added when it opens and
        # removed when it closes, so the oldest is always first.
        self._windows: dict[tuple[str, str], _Window] = {}

    def admit(self, address: str, outcome: str) -> tuple[bool, list[Summary]]:
        """Whether to write this refusal in full, and the summaries of windows now closed."""
        now = self._clock()
        closed = self._close(now)
        key = (address, outcome)
        if key not in self._windows and len(self._windows) >= self.max_keys:
            key = (OTHERS, outcome)
        window = self._windows.get(key)
        if window is None:
            self._windows[key] = _Window(opened=now)
            return True, closed
        window.counted += 1
        return False, closed

    def sweep(self) -> list[Summary]:
        """The summaries of windows that have closed (the periodic flush)."""
        return self._close(self._clock())

    def drain(self) -> list[Summary]:
        """Every count still held, windows open or not (at shutdown)."""
        return self._close(float("inf"))

    def __len__(self) -> int:
        return len(self._windows)

    def _close(self, now: float) -> list[Summary]:
        summaries = []
        while self._windows:
            key, window = next(iter(self._windows.items()))
            if now - window.opened < self.window_seconds:
                break
            del self._windows[key]
            if window.counted:
                summaries.append(Summary(*key, window.counted, self.window_seconds))
        return summaries
