"""How often a process marks a fast-lane pool polled (``_prefect.server.readiness``)."""

from __future__ import annotations

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
