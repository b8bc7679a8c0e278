"""Following ``next_cursor`` from page to page, up to a number of items."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

from taskscheduler.client.calls import Call
from taskscheduler.wire.bodies import MAX_PAGE

I = TypeVar("I")  # noqa: E741
I_co = TypeVar("I_co", covariant=True)


class Page(Protocol[I_co]):
    """A page of the API: ``items`` and the cursor of the next page (None on the last)."""

    @property
    def items(self) -> Sequence[I_co]: ...

    @property
    def next_cursor(self) -> str | None: ...


class Pager(Generic[I]):
    """Which call fetches the page at a cursor, and how many items are still wanted."""

    def __init__(
        self, fetch: Callable[[int, str | None], Call[Page[I]]], limit: int | None
    ) -> None:
        self.fetch = fetch
        self.left = limit
        self.cursor: str | None = None
        self.done = limit is not None and limit <= 0

    def next_call(self) -> Call[Page[I]]:
        """The call of the next page, sized to what is still wanted."""
        size = MAX_PAGE if self.left is None else max(1, min(self.left, MAX_PAGE))
        return self.fetch(size, self.cursor)

    def take(self, page: Page[I]) -> list[I]:
        """The items of ``page`` still wanted; ``done`` once there are no more."""
        items = list(page.items)
        if self.left is not None:
            items = items[: self.left]
            self.left -= len(items)
        self.cursor = page.next_cursor
        self.done = self.cursor is None or self.left == 0 or not page.items
        return items
