"""The gateway's relay of Prefect's event websockets for a job.

``/api/events/in``: each event a job emits is checked (``rules.event_allowed``) and passed on,
or dropped and audited. ``/api/events/out``: the job's subscription is narrowed to its own run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import httpx
import websockets
from starlette.websockets import WebSocket, WebSocketDisconnect

from taskscheduler._prefect import rest
from taskscheduler.gate import rules
from taskscheduler.gate.proxy import API_PREFIX, Gate, Refused

log = logging.getLogger("taskscheduler.gate")


async def relay(gate: Gate, websocket: WebSocket) -> None:
    """Relay ``/api/events/in`` (checking each event) or ``/api/events/out`` (narrowing
    the subscription to the job's own run)."""
    path = websocket.url.path
    incoming = path.endswith("/events/in")
    subprotocol = "prefect" if "prefect" in websocket.scope.get("subprotocols", []) else None
    await websocket.accept(subprotocol=subprotocol)
    run_id: str | None = None
    try:
        hello = await websocket.receive_json()
        if not isinstance(hello, dict) or hello.get("type") != "auth":
            raise Refused(401, "expected an auth message")
        run_id = gate.run_of(str(hello.get("token") or ""))
        own = await gate.own(run_id)
        url = gate.api_url.replace("http://", "ws://").replace("https://", "wss://")
        async with websockets.connect(
            url + path[len(API_PREFIX) :],
            subprotocols=[websockets.Subprotocol("prefect")],
            additional_headers=rest.auth_headers(gate.auth_string, None),
        ) as upstream:
            await upstream.send(json.dumps({"type": "auth", "token": gate.auth_string}))
            answer = json.loads(await upstream.recv())
            if answer.get("type") != "auth_success":
                raise Refused(503, "the Prefect API refused the gateway")
            await websocket.send_json({"type": "auth_success"})
            if incoming:
                await _events_in(gate, websocket, upstream, run_id)
            else:
                await _events_out(websocket, upstream, own)
    except Refused as refused:
        await gate.refusals.note(run_id, f"WS {path}", refused.reason, client=None)
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code=1008, reason=refused.reason[:120])
    except (WebSocketDisconnect, websockets.ConnectionClosed):
        pass
    except (OSError, httpx.HTTPError, ValueError) as exc:
        log.warning("events relay for run %s ended: %s", run_id, exc)
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code=1011)


async def _events_in(
    gate: Gate, websocket: WebSocket, upstream: websockets.ClientConnection, run_id: str
) -> None:
    while True:
        text = await websocket.receive_text()
        try:
            event = json.loads(text)
        except ValueError:
            await gate.refusals.note(run_id, "event", "malformed event", client=None)
            continue
        own = await gate.own(run_id)
        why = rules.event_allowed(event, own)
        if why is None:
            await upstream.send(text)
        else:
            name = event.get("event", "?") if isinstance(event, dict) else "?"
            await gate.refusals.note(run_id, f"event {name}", why, client=None)


async def _events_out(
    websocket: WebSocket, upstream: websockets.ClientConnection, own: rules.Own
) -> None:
    message = await websocket.receive_json()
    if not isinstance(message, dict) or message.get("type") != "filter":
        raise Refused(400, "expected a filter message")
    narrowed = rules.restrict_subscription(message.get("filter"), own)
    await upstream.send(json.dumps({"type": "filter", "filter": narrowed}))

    async def to_job() -> None:
        async for item in upstream:
            await websocket.send_text(item if isinstance(item, str) else item.decode())

    async def from_job() -> None:
        while True:  # nothing more is expected; a close ends the relay
            await websocket.receive_text()

    relays = [asyncio.create_task(to_job()), asyncio.create_task(from_job())]
    try:
        await asyncio.wait(relays, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in relays:
            task.cancel()
