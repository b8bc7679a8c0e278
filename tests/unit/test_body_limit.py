"""The body limit as a bare ASGI middleware: what the app is handed, what the client is told.

The app behind it is a FastAPI route that parses a JSON body (as ours do) or a bare ASGI app
that reads ``receive`` itself (as the auth middleware does); the client is a scripted list of
ASGI messages, so the tests see exactly how many were read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.datastructures import State
from starlette.types import Message, Receive, Scope, Send

from taskscheduler import audit
from taskscheduler.api import body_limit

LIMIT = 1024


class RecordingSink:
    """The audit sink, in memory."""

    def __init__(self) -> None:
        self.entries: list[audit.AuditEntry] = []

    async def record(self, *entries: audit.AuditEntry) -> None:
        self.entries.extend(entries)


class Client:
    """The request side: headers, then the body in the given chunks; counts what was read."""

    def __init__(self, chunks: Sequence[bytes], *, length: int | None = None) -> None:
        self.chunks = list(chunks)
        self.length = length
        self.read = 0  # messages handed to the server side
        self.sent: list[Message] = []

    def scope(self, app: Any) -> Scope:
        headers = [(b"content-type", b"application/json")]
        if self.length is not None:
            headers.append((b"content-length", str(self.length).encode()))
        else:
            headers.append((b"transfer-encoding", b"chunked"))
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/tasks",
            "raw_path": b"/v1/tasks",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "app": app,
            "state": {"request_id": "ours"},
        }

    async def receive(self) -> Message:
        if self.read >= len(self.chunks):
            raise AssertionError("the app read past the end of the body")
        chunk = self.chunks[self.read]
        self.read += 1
        return {"type": "http.request", "body": chunk, "more_body": self.read < len(self.chunks)}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def body(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))


def parsing_app() -> tuple[FastAPI, list[bytes]]:
    """A FastAPI app whose route parses its JSON body; records the bodies it got."""
    seen: list[bytes] = []
    app = FastAPI()
    app.state.audit_sink = RecordingSink()

    @app.post("/v1/tasks")
    async def create(body: dict[str, Any]) -> dict[str, Any]:
        seen.append(json.dumps(body).encode())
        return {"got": len(json.dumps(body))}

    return app, seen


async def call(app: Any, client: Client, inner: Any = None) -> None:
    """``client``'s request through the limit into ``inner`` (default: ``app`` itself)."""
    limited = body_limit.BodyLimit(inner or app, limit=LIMIT)
    await limited(client.scope(app), client.receive, client.send)


def payload(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes."""
    text = json.dumps({"pad": ""})
    return json.dumps({"pad": "x" * (size - len(text))}).encode()


async def test_a_declared_length_over_the_limit_is_413_before_a_byte_is_read() -> None:
    app, seen = parsing_app()
    client = Client([payload(4 * LIMIT)], length=4 * LIMIT)
    await call(app, client)
    assert client.status == 413
    assert client.read == 0 and seen == []
    assert (b"connection", b"close") in client.sent[0]["headers"]
    assert str(LIMIT) in client.body["detail"]
    entry = app.state.audit_sink.entries[0]
    assert (entry.outcome, entry.actor_kind, entry.request_id) == ("too_large", "anonymous", "ours")


async def test_a_body_of_unknown_length_is_refused_once_it_passes_the_limit() -> None:
    app, seen = parsing_app()
    chunks = [b"x" * 300] * 20  # 6000 bytes in all; the fourth chunk passes 1024
    client = Client(chunks)
    await call(app, client)
    assert client.status == 413
    assert client.read == 4, "reading stops at the chunk that passes the limit"
    assert seen == []
    assert [e.outcome for e in app.state.audit_sink.entries] == ["too_large"]


async def test_a_reader_outside_fastapi_is_told_the_client_left_and_its_answer_dropped() -> None:
    read: list[Message] = []

    async def reader(scope: Scope, receive: Receive, send: Send) -> None:
        while True:  # like Request.stream() in a middleware
            message = await receive()
            read.append(message)
            if message["type"] == "http.disconnect" or not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late"})

    app = type("App", (), {"state": State()})()  # no audit sink: nothing recorded
    client = Client([b"x" * 600] * 5)
    await call(app, client, inner=reader)
    assert client.status == 413 and len(client.sent) == 2, "one answer: the 413"
    assert [m["type"] for m in read] == ["http.request", "http.disconnect"]
    assert read[0]["body"] == b"x" * 600, "the chunk that passes the limit is not handed on"


async def test_a_route_behind_a_base_http_middleware_is_refused_too() -> None:
    """As in the API: the auth middleware (a BaseHTTPMiddleware) between the limit and routes."""
    app, seen = parsing_app()

    @app.middleware("http")
    async def passing(request: Any, call_next: Any) -> Any:
        return await call_next(request)

    client = Client([b"x" * 300] * 20)
    await call(app, client)
    assert client.status == 413, client.sent
    assert len([m for m in client.sent if m["type"] == "http.response.start"]) == 1
    assert client.read == 4 and seen == []


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("size", [0, 10, LIMIT])
async def test_bodies_up_to_the_limit_reach_the_route_intact(length: bool, size: int) -> None:
    app, seen = parsing_app()
    body = payload(size) if size else b"{}"
    chunks = [body[i : i + 100] for i in range(0, len(body), 100)] or [b""]
    client = Client(chunks, length=len(body) if length else None)
    await call(app, client)
    assert client.status == 200, client.sent
    assert seen == [json.dumps(json.loads(body)).encode()]
    assert app.state.audit_sink.entries == []


async def test_other_scopes_pass_untouched() -> None:
    called: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(scope["type"])

    limited = body_limit.BodyLimit(inner, limit=1)

    async def nothing() -> Message:
        raise AssertionError("not read")

    async def ignore(message: Message) -> None:
        raise AssertionError("nothing sent")

    await limited({"type": "lifespan"}, nothing, ignore)
    assert called == ["lifespan"]
