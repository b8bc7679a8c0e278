"""The gateway as an ASGI application: Prefect's API of one run, HTTP and event websockets."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from taskscheduler.gate import events as event_relay
from taskscheduler.gate.proxy import API_PREFIX, Gate


def create_app(gate: Gate) -> Starlette:
    """The gateway as an ASGI application."""

    async def http(request: Request) -> Response:
        return await gate.handle(request)

    async def events(websocket: WebSocket) -> None:
        await event_relay.relay(gate, websocket)

    methods = ["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(
        routes=[
            WebSocketRoute(API_PREFIX + "/events/in", events),
            WebSocketRoute(API_PREFIX + "/events/out", events),
            Route("/{path:path}", http, methods=methods),
        ]
    )
