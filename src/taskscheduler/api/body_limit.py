"""Request bodies over a limit are refused with 413 before they are read.

A pure ASGI middleware, because nothing later can do it: FastAPI reads and parses a route's
whole body before any dependency runs, and a 50 MB body was read in full (and grew the process
by about 60 MB) before a sign-in answered 422 or a read token 403. uvicorn hands the body over
only as the app asks for it (and stops reading the socket while its buffer is full), so:

* a ``Content-Length`` over the limit is answered 413 at once, and no byte of it is read;
* a body of unknown length (chunked) is counted as it passes through ``receive``. The message
  that would take the count past the limit is not handed on: this middleware answers 413 there
  and then, and the reader is told the client has gone (``http.disconnect``), so whoever reads
  never holds more than the limit. Whatever the app answers or raises after that is dropped.
  (Raising from ``receive`` instead would not do: an exception crossing Starlette's
  ``BaseHTTPMiddleware`` comes out wrapped in an exception group, and FastAPI answers 400.)

Refusals are audited like the others (``api.errors.record_refusal``): those refused by length
come before authentication, so they count as anonymous.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskscheduler.api import errors

OUTCOME = "too_large"


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, before reading them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await errors.record_refusal(
                Request(scope), OUTCOME, f"Content-Length {declared} over {self.limit}"
            )
            await _refuse(send, self.limit)
            return
        received = 0
        started = refused = False

        async def counted() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    refused = True
                    await errors.record_refusal(
                        Request(scope), OUTCOME, f"body passed {self.limit} bytes while read"
                    )
                    if not started:  # else too late to answer: the reader just stops
                        await _refuse(send, self.limit)
                    return {"type": "http.disconnect"}
            return message

        async def answered(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 went first
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, answered)
        except Exception:
            if not refused:
                raise
            # The app's reader met the disconnect (ClientDisconnect and the like): answered.


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _detail(limit: int) -> str:
    return f"request body too large: at most {limit} bytes"


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps({"detail": _detail(limit)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
