"""The API processes' events distributor reading in batches (``_prefect/server/distributor.py``),
and the services process running none."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import prefect_redis.messaging
import pytest
from prefect.server.events import stream
from prefect.server.services.base import Service
from prefect.server.utilities import messaging
from prefect.settings import (
    PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE,
    PREFECT_UI_ENABLED,
    temporary_settings,
)

from taskscheduler._prefect import services
from taskscheduler._prefect.server import app, distributor


class Consumer:
    async def run(self, handler: Any) -> None:
        return None  # a consumer that stops at once, so the distributor returns


async def consumer_made_by(
    run: Callable[[asyncio.Event], Awaitable[Any]], monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """The arguments ``run`` created its consumer with."""
    made: list[dict[str, Any]] = []

    def create_consumer(**kwargs: Any) -> Consumer:
        made.append(kwargs)
        return Consumer()

    monkeypatch.setattr(messaging, "create_consumer", create_consumer)
    started = asyncio.Event()
    await run(started)
    assert started.is_set() and len(made) == 1
    return made[0]


async def test_ours_makes_prefects_consumer_with_a_read_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with temporary_settings({PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE: 50}):
        prefects = await consumer_made_by(distributor.PREFECTS, monkeypatch)
        ours = await consumer_made_by(distributor.run_distributor, monkeypatch)
    # The premise: Prefect's takes the broker's default batch (one, for Redis).
    assert "read_batch_size" not in prefects
    assert ours.pop("read_batch_size") == 50
    assert {k: type(v) for k, v in ours.items()} == {k: type(v) for k, v in prefects.items()}
    assert ours["topic"] == prefects["topic"] == "events"


def test_the_redis_consumer_takes_a_read_batch_and_defaults_to_one() -> None:
    parameter = inspect.signature(prefect_redis.messaging.Consumer).parameters["read_batch_size"]
    assert parameter.default == 1


def test_the_api_app_runs_ours() -> None:
    with temporary_settings({PREFECT_UI_ENABLED: False}):
        app.create_app()
    assert stream.run_distributor is distributor.run_distributor


def test_the_services_process_runs_no_distributor(monkeypatch: pytest.MonkeyPatch) -> None:
    # The premise: Prefect's services command would run it, with every other enabled service.
    assert stream.Distributor in Service.enabled_services()
    seen: list[list[type[Service]]] = []

    def run(coroutine: Any) -> None:
        coroutine.close()
        seen.append(Service.enabled_services())

    monkeypatch.setattr(asyncio, "run", run)
    services.main()
    assert stream.Distributor not in seen[0]
    assert set(seen[0]) == set(Service.enabled_services()) - {stream.Distributor}
