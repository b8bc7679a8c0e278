"""``python -m taskscheduler.gate``: serve the job gateway on its door (a unix socket).

It reads the Prefect API's address from ``PREFECT_API_URL``, the platform's Prefect auth
string and the gate key from ``TASKS_*`` settings, and writes refusals to the audit log through
``TASKS_DATABASE_URL`` (the API's database role). The socket is made connectable by everyone:
whoever connects still needs a job credential, and the directory around it is what is mounted
into jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from taskscheduler import audit, store
from taskscheduler.gate import environment
from taskscheduler.gate.app import create_app
from taskscheduler.gate.proxy import Gate
from taskscheduler.gate.refusals import Refusals
from taskscheduler.settings import DEFAULT_API_URL, get_settings

log = logging.getLogger("taskscheduler.gate")


def socket_path() -> str:
    """Where the gateway listens: ``<door>/gate.sock``."""
    return str(get_settings().door / environment.DOOR_SOCKET)


def main() -> None:
    """Serve until SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    if settings.prefect_auth_string is None or settings.gate_key is None:
        raise SystemExit("error: the gateway needs TASKS_PREFECT_AUTH_STRING and TASKS_GATE_KEY")
    engine = store.create_engine(settings)
    refusals = Refusals(audit.DatabaseSink(engine))
    gate = Gate(
        os.environ.get("PREFECT_API_URL") or DEFAULT_API_URL,
        auth_string=settings.prefect_auth_string.get_secret_value(),
        key=settings.gate_key.get_secret_value().encode(),
        refusals=refusals,
    )

    @asynccontextmanager
    async def lifespan(_: object) -> AsyncIterator[None]:
        async def flush_every_minute() -> None:
            while True:
                await asyncio.sleep(10)
                await refusals.flush()

        flusher = asyncio.create_task(flush_every_minute())
        try:
            yield
        finally:
            flusher.cancel()
            await refusals.flush(everything=True)
            await gate.close()
            await engine.dispose()

    app = create_app(gate)
    app.router.lifespan_context = lifespan
    path = socket_path()
    door = os.path.dirname(path)
    os.makedirs(door, exist_ok=True)
    os.chmod(door, 0o755)  # noqa: S103 - the door is meant to be reached; the socket checks
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    uvicorn.run(app, uds=path, log_level="warning", server_header=False)


if __name__ == "__main__":
    main()
