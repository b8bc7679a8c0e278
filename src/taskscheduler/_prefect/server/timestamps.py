"""Timestamps bound to PostgreSQL as plain ``datetime`` objects, not Prefect's pendulum ones.

Prefect's server makes most of its timestamps with its own ``now()``: on Python < 3.13 that is a
pendulum ``DateTime`` whose arithmetic goes through Prefect's deprecation wrappers. Its
``Timestamp`` column type hands such a value to asyncpg unchanged, and asyncpg encodes a
``timestamptz`` by subtracting its epoch from it: about 360 µs for a pendulum value, 1.4 µs for
a plain one (measured on this machine). A job's rows bind a few dozen timestamps (created,
updated, the state's time, the run's times, each log line's), so under load this was about 5 %
of the API processes' CPU (py-spy, 4,000 jobs a minute on the fast lane).

``plain_timestamps`` wraps ``Timestamp.process_bind_param`` so the value bound is the same
instant as a plain ``datetime`` in UTC. Prefect's own checks (no naive timestamps; SQLite's
conversion) still run first. The API processes install it when their app is created, before any
statement is compiled (SQLAlchemy reads the method when it builds a type's bind processor).
``tests/unit/test_timestamps.py`` pins what this relies on.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect.server.utilities.database import Timestamp

_MARK = "_taskscheduler_plain"


def plain(value: dt.datetime) -> dt.datetime:
    """``value`` as a plain ``datetime`` in UTC (the same instant); a plain UTC one, or a naive
    one, unchanged.

    Only ``datetime``'s own methods are called: a subclass's are what is slow.
    """
    if type(value) is dt.datetime and value.tzinfo is dt.UTC:
        return value
    offset = dt.datetime.utcoffset(value)
    if offset is None:
        return value
    moved = dt.datetime(
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
        tzinfo=dt.UTC,
    )
    return moved - offset if offset else moved


def plain_timestamps() -> None:
    """Make Prefect's ``Timestamp`` bind plain datetimes (once per process)."""
    original = Timestamp.process_bind_param
    if getattr(original, _MARK, False):
        return

    def process_bind_param(self: Timestamp, value: Any, dialect: Any) -> dt.datetime | None:
        bound = original(self, value, dialect)
        return plain(bound) if isinstance(bound, dt.datetime) else bound

    setattr(process_bind_param, _MARK, True)
    process_bind_param.__wrapped__ = original  # type: ignore[attr-defined]
    Timestamp.process_bind_param = process_bind_param  # type: ignore[method-assign]
