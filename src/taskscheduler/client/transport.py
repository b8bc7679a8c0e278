"""What both clients share around the HTTP layer: headers, and a failed connection as an
error naming the URL."""

from __future__ import annotations

import httpx

from taskscheduler import errors
from taskscheduler.client.config import Config

USER_AGENT = "taskscheduler-client"


def headers(config: Config) -> dict[str, str]:
    """The token as a bearer header (none without a token), and who is calling."""
    found = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if config.token:
        found["Authorization"] = f"Bearer {config.token}"
    return found


def unreachable(url: str, exc: httpx.TransportError) -> errors.ApiUnreachable:
    """``ApiUnreachable`` naming the URL and what went wrong (never the token)."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        reason = f"timed out ({reason})"
    return errors.ApiUnreachable(url, reason)
