"""How often a process marks a fast-lane pool polled (``_prefect.server.readiness``)."""

from __future__ import annotations

from typing import cast

import pytest
from prefect.server.database import PrefectDBInterface

from taskscheduler._prefect.server import readiness


def test_a_pool_is_marked_at_most_once_a_refresh_per_process() -> None:
    pool = "unit-readiness"
    assert readiness.due(pool, now=1000.0)
    assert not readiness.due(pool, now=1000.0 + readiness.REFRESH - 0.1)
    assert readiness.due(pool, now=1000.0 + readiness.REFRESH)
    assert readiness.due("another-pool", now=1000.0 + readiness.REFRESH)


def test_the_refresh_keeps_well_inside_the_foremans_timeouts() -> None:
    """Prefect's foreman marks a deployment not ready when both it and its queue went unpolled
    this long; the fast lane refreshes the queue several times within it."""
    from prefect.settings import get_current_settings

    foreman = get_current_settings().server.services.foreman
    timeout = min(
        foreman.deployment_last_polled_timeout_seconds,
        foreman.work_queue_last_polled_timeout_seconds,
    )
    assert timeout >= readiness.REFRESH * 3


async def test_a_full_round_asks_for_the_next_and_a_failed_one_waits(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    marked = iter([readiness.MAX_DEPLOYMENTS, 3])

    async def mark_polled(db: object, pool: str) -> int:
        return next(marked)

    monkeypatch.setattr(readiness, "mark_polled", mark_polled)
    db = cast(PrefectDBInterface, None)
    pool = "unit-rounds"
    assert readiness.due(pool)
    await readiness.refresh(db, pool)  # a full round: some are left
    assert readiness.due(pool)
    await readiness.refresh(db, pool)  # the last few
    assert not readiness.due(pool)

    async def timed_out(db: object, pool: str) -> int:
        raise TimeoutError

    monkeypatch.setattr(readiness, "mark_polled", timed_out)
    pool = "unit-timeout"
    assert readiness.due(pool)
    await readiness.refresh(db, pool)  # logged, not raised into the claim's answer
    assert not readiness.due(pool)
    assert "marking pool 'unit-timeout' polled failed" in caplog.text
