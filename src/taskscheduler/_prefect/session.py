"""One open connection to Prefect (a ``Session``), and what every part of the gateway shares."""

from __future__ import annotations

import functools
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, cast

import certifi
import httpx
import prefect.context
from prefect.client.orchestration import PrefectClient
from prefect.settings import (
    PREFECT_API_AUTH_STRING,
    PREFECT_API_KEY,
    PREFECT_API_SSL_CERT_FILE,
    PREFECT_API_TLS_INSECURE_SKIP_VERIFY,
    PREFECT_API_URL,
)
from prefect.settings.legacy import Setting

from taskscheduler import credentials, errors
from taskscheduler._prefect.blocks import TaskCode
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


@dataclass
class _Known:
    """Ids of one Prefect API that change only if someone deletes the object in Prefect (and
    every task with it): read once, read again when a call finds them gone."""

    flow: uuid.UUID | None = None
    code_block: tuple[uuid.UUID, uuid.UUID] | None = None


# Kept for the process, by Prefect API URL: the REST API makes a gateway for every request.
_KNOWN: dict[str, _Known] = {}


class Connection:
    """One Prefect client kept open by a long-lived process (the REST API) and shared by every
    gateway given it. A client per ``session()`` costs a new TCP connection and, on its first
    state-changing call, a CSRF token (a call, and a write of Prefect's database) for every
    request the process serves. Open it with ``async with``."""

    def __init__(self, settings: Settings) -> None:
        self.url = api_url()
        self.client, self.updates = _client(settings, self.url)

    async def __aenter__(self) -> Connection:
        await self.client.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.client.__aexit__(*exc_info)


class GatewayBase:
    """The settings, the connection and the generic flow, for each part of the gateway."""

    def __init__(self, settings: Settings, connection: Connection | None = None) -> None:
        self.settings = settings
        self.url = api_url()
        self._connection = connection if connection and connection.url == self.url else None
        self._known = _KNOWN.setdefault(self.url, _Known())

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        """An open Prefect client (the shared connection's, if the gateway was given one);
        connection failures become ``PlatformUnavailable``."""
        if self._connection is not None:
            client, updates = self._connection.client, self._connection.updates
        else:
            client, updates = _client(self.settings, self.url)
        try:
            with _settings_with(updates):
                async with client:  # Prefect's client may be entered again while open
                    yield Session(client)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise errors.PlatformUnavailable(
                f"cannot reach the Prefect server at {self.url}: is the platform up (make up)?"
            ) from exc

    async def _flow_id(self, client: PrefectClient, *, fresh: bool = False) -> uuid.UUID:
        """The generic flow's id (created on first use), remembered: asking for it was a
        write transaction of the Prefect server on every create and every read of a task."""
        known = self._known
        if fresh or known.flow is None:
            known.flow = await client.create_flow_from_name(FLOW_NAME)
        return known.flow

    async def _code_block_ids(
        self, client: PrefectClient, *, fresh: bool = False
    ) -> tuple[uuid.UUID, uuid.UUID]:
        """The ``TaskCode`` block type's and schema's ids (registered on first use),
        remembered: registering read both on every create."""
        known = self._known
        if fresh or known.code_block is None:
            await TaskCode.aregister_type_and_schema(client=client)
            type_id, schema_id = TaskCode._block_type_id, TaskCode._block_schema_id
            if type_id is None or schema_id is None:
                raise errors.PlatformUnavailable("Prefect registered no TaskCode block type")
            known.code_block = (type_id, schema_id)
        return known.code_block


def _client(settings: Settings, url: str) -> tuple[PrefectClient, dict[Setting, Any]]:
    """A Prefect client of ``url``, and the Prefect settings to hold while it is used."""
    # Prefect's own setting first; else the secret `make up` generated for this platform.
    auth_string = PREFECT_API_AUTH_STRING.value() or credentials.prefect_auth_string(settings)
    client = PrefectClient(
        url,
        api_key=PREFECT_API_KEY.value(),
        auth_string=auth_string,
        httpx_settings={
            "verify": _tls_context(
                bool(PREFECT_API_TLS_INSECURE_SKIP_VERIFY.value()),
                PREFECT_API_SSL_CERT_FILE.value(),
            )
        },
    )
    # Prefect's helpers behind the client (block loads emit events, for one) read Prefect's
    # settings, not the client: without this, an unset PREFECT_API_URL makes them start an
    # ephemeral in-process server.
    updates: dict[Setting, Any] = {PREFECT_API_URL: url}
    if auth_string:
        updates[PREFECT_API_AUTH_STRING] = auth_string
    return client, updates


@functools.cache
def _tls_context(insecure: bool, cafile: str | None) -> ssl.SSLContext:
    """The context ``PrefectClient`` would build for itself, built once a process: Prefect's
    client loads the CA file for every client it makes, which took about a quarter of our API's
    CPU per request (py-spy, a task create: 181 of 693 samples)."""
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=cafile or certifi.where())


@contextmanager
def _settings_with(updates: dict[Setting, Any]) -> Iterator[None]:
    """Prefect's ``temporary_settings(updates=...)``, with the updated settings kept while the
    current settings and the updates stay the same (building them validates every Prefect
    setting: about a quarter of our API's CPU per request, 167 of 693 samples). One is kept:
    a process of the platform talks to one Prefect API."""
    global _last
    current = prefect.context.get_settings_context()
    wanted = tuple(sorted((s.name, v) for s, v in updates.items()))
    if _last is None or _last[0] is not current.settings or _last[1] != wanted:
        _last = (
            current.settings,
            wanted,
            current.settings.copy_with_update(updates=cast(Any, updates)),
        )
    with prefect.context.SettingsContext(profile=current.profile, settings=_last[2]):
        yield


# The settings the last session started from, its updates, and the settings made of them.
_last: tuple[Any, tuple[tuple[str, Any], ...], Any] | None = None
