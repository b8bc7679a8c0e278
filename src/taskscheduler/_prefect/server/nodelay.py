"""Answers sent at once on a kept-alive connection of a multi-process Prefect API.

With ``--workers N`` uvicorn binds the listening socket itself as ``socket(AF_INET,
SOCK_STREAM)``: protocol 0, not ``IPPROTO_TCP``. The connections it accepts inherit that, and
asyncio sets ``TCP_NODELAY`` only on sockets whose protocol is ``IPPROTO_TCP``
(``asyncio.base_events._set_nodelay``). uvicorn writes an answer's head and body in two sends;
with Nagle's algorithm on, the body waits for the client's acknowledgement of the head, which
Linux delays by 40 ms on a connection past its first exchanges. Every call after the first on
a kept-alive connection took 44 ms, even ``GET /version`` (curl on fresh connections: 2 ms).
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol


class NoDelayH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol (the one ``http="auto"`` picks here, httptools not being
    installed) that turns Nagle's algorithm off on each TCP connection it is handed."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        no_delay(transport)
        super().connection_made(transport)


def no_delay(transport: asyncio.BaseTransport) -> None:
    """``TCP_NODELAY`` on the transport's socket, if it is a TCP one (not a unix socket)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
