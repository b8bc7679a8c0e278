"""Tasks ↔ deployments and jobs ↔ flow runs, through Prefect's client (the wing's main room).

Prefect's client API moves between releases; keeping every call in this wing keeps that blast
radius small, and lets the domain model be tested without a server. ``Gateway`` gathers the
operations of ``deployments``, ``versions`` (code versions) and ``flow_runs`` over one client
per ``session()``, or the one of a ``Connection`` a long-lived process keeps open for all of
them (the REST API's); ``mapping`` turns Prefect's objects into ours. Prefect's exceptions become
``errors``; nothing Prefect-typed leaves: the gateway answers in ``models`` and ``records``, and
its ``Session`` is only handed back to it.
"""

from __future__ import annotations

import httpx
from prefect.exceptions import PrefectHTTPStatusError
from prefect.settings import PREFECT_API_AUTH_STRING

from taskscheduler import errors
from taskscheduler._prefect import rest
from taskscheduler._prefect.deployments import Deployments, NewDeployment
from taskscheduler._prefect.flow_runs import FlowRuns
from taskscheduler._prefect.records import Deployment, Run, StoredVersion
from taskscheduler._prefect.session import Connection, Session, api_url
from taskscheduler._prefect.versions import CodeVersions


async def server_health(*, timeout: float) -> tuple[bool, str | None]:
    """Whether the Prefect API of ``api_url()`` answers its health check, and why not."""
    auth = PREFECT_API_AUTH_STRING.value()
    headers = rest.auth_headers(auth, None)
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(f"{api_url()}/health", headers=headers)
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__}: {exc}"
    if response.status_code != 200:
        return False, f"HTTP {response.status_code}"
    return True, None


class Gateway(Deployments, CodeVersions, FlowRuns):
    """Prefect operations in the platform's terms, over one client per ``session()`` (the
    ``Connection``'s, if given one)."""

    async def check_health(self, session: Session) -> None:
        """Raise ``PlatformUnavailable`` unless the Prefect API answers healthy."""
        try:
            error = await session.client.api_healthcheck()
        except PrefectHTTPStatusError as exc:
            raise errors.PlatformUnavailable(f"Prefect API unhealthy: {exc}") from exc
        if error is not None:
            raise errors.PlatformUnavailable(f"Prefect API unhealthy: {error}")


__all__ = [
    "Connection",
    "Deployment",
    "Gateway",
    "NewDeployment",
    "Run",
    "Session",
    "StoredVersion",
    "api_url",
    "server_health",
]
