"""One open connection to Prefect (a ``Session``), and what every part of the gateway shares."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from prefect.client.orchestration import PrefectClient
from prefect.settings import (
    PREFECT_API_AUTH_STRING,
    PREFECT_API_KEY,
    PREFECT_API_URL,
    temporary_settings,
)
from prefect.settings.legacy import Setting

from taskscheduler import credentials, errors
from taskscheduler.policy import FLOW_NAME
from taskscheduler.settings import DEFAULT_API_URL, Settings

PAGE = 200


def api_url() -> str:
    """The Prefect API our SDK talks to: Prefect's own ``PREFECT_API_URL`` (env or profile)."""
    return PREFECT_API_URL.value() or DEFAULT_API_URL


@dataclass(frozen=True)
class Session:
    """An open Prefect client; outside ``_prefect`` only ever handed back to the gateway."""

    client: PrefectClient


class GatewayBase:
    """The settings, the connection and the generic flow, for each part of the gateway."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = api_url()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        """An open Prefect client; connection failures become ``PlatformUnavailable``."""
        # Prefect's own setting first; else the secret `make up` generated for this platform.
        auth_string = PREFECT_API_AUTH_STRING.value() or credentials.prefect_auth_string(
            self.settings
        )
        client = PrefectClient(self.url, api_key=PREFECT_API_KEY.value(), auth_string=auth_string)
        # Prefect's helpers behind the client (block loads emit events, for one) read Prefect's
        # settings, not the client: without this, an unset PREFECT_API_URL makes them start an
        # ephemeral in-process server.
        updates: dict[Setting, Any] = {PREFECT_API_URL: self.url}
        if auth_string:
            updates[PREFECT_API_AUTH_STRING] = auth_string
        try:
            with temporary_settings(updates=updates):
                async with client:
                    yield Session(client)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise errors.PlatformUnavailable(
                f"cannot reach the Prefect server at {self.url}: is the platform up (make up)?"
            ) from exc

    async def _flow_id(self, client: PrefectClient) -> uuid.UUID:
        """The generic flow's id (created on first use)."""
        return await client.create_flow_from_name(FLOW_NAME)
