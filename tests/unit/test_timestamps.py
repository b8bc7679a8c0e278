"""Prefect's timestamps bound as plain datetimes (``_prefect/server/timestamps.py``), and the
Prefect behaviour that makes it worth doing."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pendulum
import pytest
from prefect.server.utilities.database import Timestamp
from prefect.types._datetime import now
from sqlalchemy.dialects import postgresql, sqlite

from taskscheduler._prefect.server import timestamps

PARIS = zoneinfo.ZoneInfo("Europe/Paris")


def prefects_bind(value: dt.datetime | None) -> object:
    """What Prefect's own ``Timestamp`` binds for PostgreSQL, whether or not ours is installed."""
    method = Timestamp.process_bind_param
    original = getattr(method, "__wrapped__", method)
    return original(Timestamp(), value, postgresql.asyncpg.dialect())


def test_prefect_binds_its_pendulum_timestamps_unchanged() -> None:
    """The premise: Prefect's ``now()`` is a ``datetime`` subclass here, and its column type
    hands it to asyncpg as it is. If an upgrade changes either, ``timestamps`` is no longer
    needed."""
    value = now("UTC")
    assert type(value) is not dt.datetime
    assert isinstance(value, pendulum.DateTime)
    assert prefects_bind(value) is value


@pytest.mark.parametrize(
    "value",
    [
        now("UTC"),
        pendulum.datetime(2026, 3, 29, 1, 30, tz="Europe/Paris"),
        dt.datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=PARIS),
        dt.datetime(2026, 12, 2, 12, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    ],
)
def test_bound_timestamps_are_plain_datetimes_of_the_same_instant(value: dt.datetime) -> None:
    timestamps.plain_timestamps()
    bound = Timestamp().bind_processor(postgresql.asyncpg.dialect())
    assert bound is not None
    result = bound(value)
    assert type(result) is dt.datetime
    assert result.tzinfo is dt.UTC
    assert result - value == dt.timedelta(0)  # (== is False for a repeated hour, PEP 495)
    assert result.utcoffset() == dt.timedelta(0)


def test_prefects_own_checks_still_run_first() -> None:
    timestamps.plain_timestamps()
    with pytest.raises(ValueError, match="timezone"):
        Timestamp().process_bind_param(dt.datetime(2026, 12, 2), postgresql.asyncpg.dialect())
    assert Timestamp().process_bind_param(None, postgresql.asyncpg.dialect()) is None
    paris = dt.datetime(2026, 12, 2, 13, 0, tzinfo=PARIS)
    on_sqlite = Timestamp().process_bind_param(paris, sqlite.dialect())
    assert on_sqlite == paris and on_sqlite is not None and on_sqlite.utcoffset() == dt.timedelta(0)


def test_installing_twice_wraps_once() -> None:
    timestamps.plain_timestamps()
    installed = Timestamp.process_bind_param
    timestamps.plain_timestamps()
    assert Timestamp.process_bind_param is installed
    assert getattr(installed, "__wrapped__", None) is not None
    assert not hasattr(installed.__wrapped__, "__wrapped__")


def test_a_plain_utc_datetime_is_passed_through() -> None:
    value = dt.datetime.now(dt.UTC)
    assert timestamps.plain(value) is value
