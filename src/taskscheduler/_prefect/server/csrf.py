"""Prefect's CSRF check, done without a database read for a token this process has checked.

Prefect's ``CsrfMiddleware`` reads the caller's token from the database on every POST, PUT,
PATCH and DELETE, inside a ``BaseHTTPMiddleware``, which also runs every such request's answer
through an extra task and stream. The fast lane makes about 3.5 POSTs a job; at 4,000 jobs a
minute that lookup was 4.6-6 % of the API processes' CPU (py-spy, 2026-12-02).

``CsrfCheck`` takes its place in the same spot of Prefect's app. It answers the same three
refusals with the same bodies and status. A token it has found in the database is remembered
for its client until the token's expiration. A token that differs from the one remembered is
looked up again, so a token the client renewed through another API process is accepted.

One difference, by design: after a client renews its token (it does so when its old one
expires, or after a refusal), the old one stays accepted by a process that remembered it, until
the old one's own expiry. Both were secrets of the same client. Prefect has no way to revoke a
token before it expires.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from cachetools import LRUCache
from fastapi import FastAPI
from prefect.server import models
from prefect.server.api.middleware import CsrfMiddleware
from prefect.server.database import provide_database_interface
from prefect.settings import PREFECT_SERVER_CSRF_PROTECTION_ENABLED
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

#: The token stored for a client and when it expires; None when it has none unexpired.
Stored = tuple[str, dt.datetime]
Reader = Callable[[str], Awaitable[Stored | None]]

CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Clients remembered per process. Prefect's client makes one id per client object; a
#: forgotten one costs one database read, as every call did before.
REMEMBERED = 10_000


async def read_from_prefect(client: str) -> Stored | None:
    """The client's unexpired token, as Prefect's middleware reads it."""
    db = provide_database_interface()
    async with db.session_context() as session:
        # Typed loosely by Prefect's db_injector.
        read: Callable[..., Awaitable[Any]] = models.csrf_token.read_token_for_client
        token = await read(session=session, client=client)
    return None if token is None else (token.token, token.expiration)


class CsrfCheck:
    """Refuses a state-changing request without the client's current CSRF token (ASGI)."""

    def __init__(self, app: ASGIApp, *, read: Reader = read_from_prefect) -> None:
        self.app = app
        self._read = read
        self._known: LRUCache[str, Stored] = LRUCache(maxsize=REMEMBERED)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in CHANGES:
            refusal = await self._refusal(Headers(scope=scope))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _refusal(self, headers: Headers) -> JSONResponse | None:
        token = headers.get("Prefect-Csrf-Token")
        client = headers.get("Prefect-Csrf-Client")
        if token is None:
            return JSONResponse({"detail": "Missing CSRF token."}, status_code=403)
        if client is None:
            return JSONResponse({"detail": "Missing client identifier."}, status_code=403)
        if await self._valid(client, token):
            return None
        return JSONResponse(
            {"detail": "Invalid CSRF token or client identifier."},
            status_code=403,
            headers={"Access-Control-Allow-Origin": "*"},
        )

    async def _valid(self, client: str, token: str) -> bool:
        known = self._known.get(client)
        if known is not None and _same(known[0], token) and known[1] > _now():
            return True
        stored = await self._read(client)
        if stored is None:
            self._known.pop(client, None)
            return False
        self._known[client] = stored
        return _same(stored[0], token)


def take_over(app: FastAPI) -> None:
    """Put ``CsrfCheck`` where Prefect's ``create_app`` put its ``CsrfMiddleware``; before the
    app serves its first request (Starlette builds its middleware then)."""
    stack = app.user_middleware
    classes: list[object] = [m.cls for m in stack]
    if CsrfMiddleware in classes:
        stack[classes.index(CsrfMiddleware)] = Middleware(CsrfCheck)
        return
    if PREFECT_SERVER_CSRF_PROTECTION_ENABLED.value() and CsrfCheck not in classes:
        # A Prefect upgrade moved its check: refuse to serve rather than serve unchecked.
        raise RuntimeError("CSRF protection is on but Prefect's CsrfMiddleware was not found")


def _same(a: str, b: str) -> bool:
    # Bytes: compare_digest refuses str with characters beyond ASCII (a header may hold some).
    return hmac.compare_digest(a.encode(), b.encode())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
