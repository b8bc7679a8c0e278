"""The events distributor of an API process, reading the events stream a batch at a time.

Each Prefect API process hands every event to its own websocket subscribers (``/events/out``:
the UI's live views, ``prefect events stream``) through a consumer of its own on the events
stream, whether or not anyone is subscribed. Prefect creates that consumer with the broker's
default read batch: with Redis, one event a round-trip, each with its ``XREADGROUP``, ``XACK``
and pending-message check. At 4,000 jobs a minute that was 4.6-7.9 % of the API processes' CPU
(py-spy, 2026-12-02).

``batched_distributor`` makes the consumer read as many events a round-trip as the services'
event persister does (``PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE``, set by
``taskscheduler.tuning``; Prefect's default of one otherwise). A read returns as soon as one
event is there, so no event waits for a batch to fill. The in-memory broker of a single
process ignores the batch size.
"""

from __future__ import annotations

import asyncio

from prefect.server.events import stream
from prefect.server.utilities import messaging
from prefect.settings.context import get_current_settings

#: Prefect's own, which the contract test compares with ours.
PREFECTS = stream.run_distributor


async def run_distributor(started: asyncio.Event) -> None:
    """Prefect's ``stream.run_distributor``, its consumer reading a batch a round-trip."""
    batch = get_current_settings().server.services.event_persister.read_batch_size
    async with messaging.ephemeral_subscription(topic="events") as create_consumer_kwargs:
        started.set()
        async with stream.distributor() as handler:
            consumer = messaging.create_consumer(**create_consumer_kwargs, read_batch_size=batch)
            await consumer.run(handler=handler)


def batched_distributor() -> None:
    """Have ``stream.start_distributor`` run ours (it looks the function up when it starts)."""
    # Prefect types its own NoReturn; both run until cancelled, as their consumers do.
    stream.run_distributor = run_distributor  # type: ignore[assignment]
