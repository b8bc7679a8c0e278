"""The application factory: routers, middleware, error handlers, start-up.

Middleware, outermost first: security headers (``security_headers``); request id and metrics
(``_observe``); the body limit (``body_limit``: 413 before a byte of an oversized body is read);
authentication and the same-origin check of cookie sessions (``_authenticate``, before any
route parses a body).

Start-up checks that our tables are at their latest revision (the platform's bootstrap migrates
them, as a role the API's own is not: ``dbroles``) and registers the first admin token from
``TASKS_ADMIN_TOKEN``; the API then serves with one database engine and
one audit sink shared by all requests.

The web page (``ui``) builds on this package and is added by ``taskscheduler.web``; nothing
here knows of it. ``python -m taskscheduler.api`` serves the REST API alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.routing import Match

from taskscheduler import audit, store, tokens
from taskscheduler.api import (
    auth,
    body_limit,
    errors,
    metrics,
    refusal_limit,
    security_headers,
)
from taskscheduler.api.routes import audit as audit_routes
from taskscheduler.api.routes import health, jobs, schedules
from taskscheduler.api.routes import status as status_routes
from taskscheduler.api.routes import tasks as task_routes
from taskscheduler.api.routes import tokens as token_routes
from taskscheduler.sdk import PrefectConnection
from taskscheduler.settings import Settings, get_settings

log = logging.getLogger("taskscheduler.api")

REQUEST_ID_HEADER = "X-Request-ID"
MAX_PEEK_BYTES = 1024 * 1024
SWEEP_SECONDS = 5.0  # how soon after its window closes a refusal summary is written
_REQUEST_ID = re.compile(r"^[\w.:-]{1,64}$")


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new API application on ``settings`` (default: the environment's)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = store.create_engine(settings)
        await store.require_current(engine)
        admin = (
            settings.admin_token.get_secret_value()
            if settings.admin_token is not None
            else _generated_admin_token(settings)
        )
        if admin:
            await tokens.ensure_bootstrap(engine, admin)
        app.state.engine = engine
        app.state.audit_sink = audit.DatabaseSink(engine)
        sweeper = asyncio.create_task(_sweep_refusals(app))
        try:
            async with PrefectConnection(settings) as app.state.prefect:
                yield
        finally:
            sweeper.cancel()
            await errors.record_summaries(app.state.audit_sink, app.state.refusal_limiter.drain())
            await engine.dispose()

    app = FastAPI(
        title="taskscheduler",
        version="1",
        summary="Tasks (Prefect deployments) and jobs (flow runs), over HTTP.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics.Metrics()
    app.state.refusal_limiter = refusal_limit.RefusalLimiter(window_seconds=settings.refusal_window)
    errors.install(app)
    app.include_router(health.router)
    routers = (
        task_routes.router,
        jobs.router,
        schedules.router,
        token_routes.router,
        audit_routes.router,
        status_routes.router,
    )
    for router in routers:
        app.include_router(router, dependencies=[Depends(auth.bearer)])
    # Our own routes, to name a request's route (metrics) and action (audit) before it runs;
    # whoever adds routes to the application adds them here too (``taskscheduler.web``).
    app.state.known_routes = [r for router in (health.router, *routers) for r in router.routes]
    # Each one added runs before those added earlier.
    app.middleware("http")(_authenticate)
    app.add_middleware(body_limit.BodyLimit, limit=settings.max_body_bytes)
    app.middleware("http")(_observe)
    app.add_middleware(security_headers.SecurityHeaders)
    return app


async def _sweep_refusals(app: FastAPI) -> None:
    """Write the summaries of closed refusal windows even when no refusal follows them."""
    limiter: refusal_limit.RefusalLimiter = app.state.refusal_limiter
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        await errors.record_summaries(app.state.audit_sink, limiter.sweep())


async def _observe(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Give the request an id, find its route, and count and time it.

    The id is ours until the caller is authenticated: only then does an ``X-Request-ID`` the
    caller chose become the request's id (in the answer and in audit rows), so an anonymous
    caller cannot write ids of its choosing into the audit log.
    """
    given = request.headers.get(REQUEST_ID_HEADER, "")
    request.state.offered_request_id = given if _REQUEST_ID.match(given) else None
    request.state.request_id = uuid.uuid4().hex
    route = "unmatched"
    for candidate in request.app.state.known_routes:
        match, child = candidate.matches(request.scope)
        if match is Match.FULL:
            route = getattr(candidate, "path", route)
            request.state.action = getattr(candidate, "name", None)
            request.state.path_params = child.get("path_params", {})
            break
    started = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
    finally:
        collected: metrics.Metrics = request.app.state.metrics
        collected.requests.labels(request.method, route, str(status)).inc()
        collected.latency.labels(request.method, route).observe(time.perf_counter() - started)
    response.headers[REQUEST_ID_HEADER] = request.state.request_id
    return response


async def _authenticate(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Refuse /v1 calls without a valid token (401) or with too small a scope (403)."""
    needed = auth.needed_scope(request.method, request.url.path)
    if needed is None:
        return await call_next(request)
    secret = auth.bearer_token(request)
    from_page = secret is None and auth.session_token(request) is not None
    if from_page:
        if request.method.upper() not in auth.SAFE_METHODS and not auth.same_origin(request):
            detail = "cross-site request refused: call from the web page, or send a bearer token"
            await errors.record_refusal(request, "forbidden", detail)
            return JSONResponse(status_code=403, content={"detail": detail})
        secret = auth.session_token(request)
    token = await tokens.authenticate(request.app.state.engine, secret) if secret else None
    if token is None:
        reason = "missing bearer token" if secret is None else "unknown or revoked token"
        await errors.record_refusal(request, "unauthorized", reason)
        return JSONResponse(
            status_code=401,
            content={"detail": f"not authenticated: {reason}"},
            headers={"WWW-Authenticate": "Bearer"},
        )
    actor = auth.actor_of(token, "ui" if from_page else "api")
    request.state.principal = auth.Principal(token=token, actor=actor)
    request.state.request_id = request.state.offered_request_id or request.state.request_id
    if not token.scope.allows(needed):
        detail = f"this call needs scope {needed.value}; the token has {token.scope.value}"
        await errors.record_refusal(request, "forbidden", detail, task=await _task_named(request))
        return JSONResponse(status_code=403, content={"detail": detail})
    return await call_next(request)


async def _task_named(request: Request) -> str | None:
    """The task a refused (but authenticated) call names in its body, for the audit row; read
    only up to MAX_PEEK_BYTES (a body of unknown length is not read further)."""
    if int(request.headers.get("content-length") or 0) > MAX_PEEK_BYTES:
        return None
    peeked = bytearray()
    async for chunk in request.stream():
        peeked += chunk
        if len(peeked) > MAX_PEEK_BYTES:
            return None
    try:
        body = json.loads(peeked)
    except ValueError:
        return None
    name = body.get("name") if isinstance(body, dict) else None
    return name[:200] if isinstance(name, str) else None


def _generated_admin_token(settings: Settings) -> str | None:
    from taskscheduler import credentials

    return credentials.read_file(settings).get("admin_token")


def main() -> None:
    """Serve the REST API alone with uvicorn on ``TASKS_HOST:TASKS_API_PORT``."""
    settings = get_settings()
    serve(create_app(settings), settings)


def serve(app: FastAPI, settings: Settings) -> None:
    """Serve ``app`` with uvicorn on ``TASKS_HOST:TASKS_API_PORT``."""
    import uvicorn

    uvicorn.run(
        app,
        host=settings.host,
        port=settings.api_port,
        proxy_headers=False,
        server_header=False,
        log_level="info",
    )
