"""A multi-process Prefect API answers kept-alive calls without waiting on delayed ACKs.

The servers here are real uvicorn servers on loopback, serving from the socket uvicorn binds for
``--workers N`` (``Config.bind_socket``); what is checked is the accepted connection's
``TCP_NODELAY``, read back from the server's side of it.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest
import uvicorn

from taskscheduler._prefect.server import __main__ as server_main
from taskscheduler._prefect.server.nodelay import NoDelayH11Protocol


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _nodelay_of_accepted(http: Any) -> list[int]:
    """Serve ``_app`` from a socket bound as uvicorn binds it for its workers, make two calls
    on one kept-alive connection, and read ``TCP_NODELAY`` of the server's connections."""
    config = uvicorn.Config(_app, host="127.0.0.1", port=0, http=http, lifespan="off")
    sock = config.bind_socket()
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.01)
        port = sock.getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(2):
                assert (await client.get("/")).text == "ok"
            return [
                c.transport.get_extra_info("socket").getsockopt(
                    socket.IPPROTO_TCP, socket.TCP_NODELAY
                )
                for c in server.server_state.connections
            ]
    finally:
        server.should_exit = True
        await serving
        sock.close()


async def test_uvicorns_worker_socket_leaves_nagle_on_by_itself() -> None:
    """The premise: uvicorn's own protocol on its worker socket does not set ``TCP_NODELAY``.
    If an upgrade of uvicorn or Python fixes that, this fails and ``nodelay.py`` can go."""
    assert await _nodelay_of_accepted("h11") == [0]


async def test_our_protocol_turns_nagle_off_on_each_connection() -> None:
    assert await _nodelay_of_accepted(NoDelayH11Protocol) == [1]


def test_the_multi_process_server_is_served_with_our_protocol(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(server_main.uvicorn, "run", lambda app, **kw: seen.update(kw, app=app))
    for switch in ("PREFECT__SERVER_FINAL", "PREFECT__SERVER_WEBSERVER_ONLY"):
        monkeypatch.setenv(switch, "")  # main() sets them for its workers
    server_main.main(["--port", "4999", "--workers", "2"])
    assert seen["http"] is NoDelayH11Protocol
    assert seen["workers"] == 2
