"""Who is calling and what they may do: bearer tokens, checked before anything else.

The scope a call needs follows from its path and method, in one place (``needed_scope``):
``/v1/tokens`` needs ``admin``; any other ``GET`` needs ``read``; any other method ``write``.
Authentication runs in middleware, before the body is even parsed, so an unauthenticated
caller learns nothing from validation errors and a refusal costs no Prefect call. What a
permitted call may use (work pools, Secret blocks) is the token's grants, which the SDK checks
(``taskscheduler.grants``): the page and the API pass through it alike.
"""

from __future__ import annotations

import dataclasses

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from taskscheduler import audit, tokens

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The web page's session: the token itself, in an HttpOnly, SameSite=Strict cookie.
SESSION_COOKIE = "tasks_session"

# Only documents the scheme in OpenAPI (the "Authorize" button of /docs); the middleware enforces.
bearer = HTTPBearer(auto_error=False, description="An API token: `tasks token create`.")


@dataclasses.dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    token: tokens.TokenInfo
    actor: audit.Actor


def needed_scope(method: str, path: str) -> tokens.Scope | None:
    """The scope a call needs; None for the open endpoints (health, metrics, docs)."""
    if not path.startswith("/v1/") and path != "/v1":
        return None
    if path == "/v1/tokens" or path.startswith("/v1/tokens/"):
        return tokens.Scope.ADMIN
    return tokens.Scope.READ if method.upper() in SAFE_METHODS else tokens.Scope.WRITE


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if well formed."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def session_token(request: Request) -> str | None:
    """The token of the web page's session cookie, if any."""
    value = request.cookies.get(SESSION_COOKIE, "").strip()
    return value or None


def same_origin(request: Request) -> bool:
    """Whether a call comes from one of our own pages: a cookie alone must not change anything
    (cross-site request forgery), so unsafe calls on a session also need the browser to say
    they are same-origin (``Sec-Fetch-Site``, else ``Origin``)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    host = request.headers.get("host")
    return (
        origin is not None
        and host is not None
        and origin
        in (
            f"http://{host}",
            f"https://{host}",
        )
    )


def principal(request: Request) -> Principal:
    """The caller the middleware authenticated (every /v1 route has one)."""
    found = getattr(request.state, "principal", None)
    assert isinstance(found, Principal), "the auth middleware runs before every /v1 route"
    return found


async def documented(
    _: HTTPAuthorizationCredentials | None = None,
) -> None:
    """Placeholder dependency so OpenAPI lists the bearer scheme on /v1 routes."""


def actor_of(token: tokens.TokenInfo, source: audit.Source = "api") -> audit.Actor:
    """The audit identity of a token, calling through the API or from the web page."""
    return audit.Actor(kind="token", id=token.id, name=token.name, source=source)
