"""``python -m taskscheduler.runtime.door [prefect ARGS]``: a job's way to the platform, then
the job itself.

Inside a job's sandbox or container there is no network to the platform, only the job
gateway's socket (``TASKS_DOOR``). Prefect's client speaks HTTP and websockets over TCP, so
this relays a port on the job's own loopback to that socket, points ``PREFECT_API_URL`` at it
and then, in this same process (the relay lives as long as it does), runs Prefect's engine for
the flow run named by ``PREFECT__FLOW_RUN_ID`` — or, given ``prefect ARGS``, Prefect's CLI,
e.g. ``prefect flow-run execute`` in a container, whose runner watches for the run being
cancelled and stops the engine, as a stock Docker job would. The relay only moves bytes; what
may pass is the gateway's decision, and the job's credential (its ``PREFECT_API_AUTH_STRING``)
is good for its own run only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import runpy
import socket
import sys
import threading

DOOR_VARIABLE = "TASKS_DOOR"
CHUNK = 64 * 1024


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


async def _serve(listener: socket.socket, door: str, ready: threading.Event) -> None:
    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            door_reader, door_writer = await asyncio.open_unix_connection(door)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, door_writer), _pipe(door_reader, writer))

    server = await asyncio.start_server(relay, sock=listener)
    ready.set()
    async with server:
        await server.serve_forever()


def open_door(door: str) -> str:
    """Relay a loopback port to the gateway's socket in a daemon thread; the API's address."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    ready = threading.Event()
    thread = threading.Thread(
        target=lambda: asyncio.run(_serve(listener, door, ready)), name="door", daemon=True
    )
    thread.start()
    ready.wait(10)
    return f"http://127.0.0.1:{port}/api"


def main() -> None:
    """Open the door, then run the flow run's engine (or the Prefect command given) here."""
    door = os.environ.get(DOOR_VARIABLE)
    if not door:
        raise SystemExit(f"error: {DOOR_VARIABLE} names no gateway socket")
    os.environ["PREFECT_API_URL"] = open_door(door)
    command = sys.argv[1:]
    if command[:1] == ["prefect"]:
        sys.argv = command
        from prefect.cli import app  # after PREFECT_API_URL: Prefect reads it at import

        app()
    else:
        runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
