"""``python -m taskscheduler._prefect.server --host H --port P [--workers N] [--no-services]``.

What ``prefect server start`` does in the foreground (its ``_run_in_foreground``), serving our
``app.create_app`` instead of Prefect's: one process with the services, or ``--workers N`` API
processes without them (the platform then runs ``taskscheduler._prefect.services`` apart).
"""

from __future__ import annotations

import argparse
import os

import uvicorn
from prefect.settings import (
    PREFECT_SERVER_API_KEEPALIVE_TIMEOUT,
    PREFECT_SERVER_API_WEBSOCKET_PING_INTERVAL,
    PREFECT_SERVER_API_WEBSOCKET_PING_TIMEOUT,
    PREFECT_SERVER_LOGGING_LEVEL,
)

from taskscheduler._prefect.server.app import create_app
from taskscheduler._prefect.server.nodelay import NoDelayH11Protocol


def main(argv: list[str] | None = None) -> None:
    """Serve until stopped."""
    parser = argparse.ArgumentParser(prog="python -m taskscheduler._prefect.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4200)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-services", action="store_true")
    args = parser.parse_args(argv)
    common = {
        "host": args.host,
        "port": args.port,
        "timeout_keep_alive": PREFECT_SERVER_API_KEEPALIVE_TIMEOUT.value(),
        "ws_ping_interval": PREFECT_SERVER_API_WEBSOCKET_PING_INTERVAL.value(),
        "ws_ping_timeout": PREFECT_SERVER_API_WEBSOCKET_PING_TIMEOUT.value(),
        "log_level": PREFECT_SERVER_LOGGING_LEVEL.value().lower(),
    }
    if args.workers == 1:
        uvicorn.run(create_app(final=True, webserver_only=args.no_services), **common)
        return
    os.environ["PREFECT__SERVER_FINAL"] = "1"
    os.environ["PREFECT__SERVER_WEBSERVER_ONLY"] = "1"
    uvicorn.run(
        "taskscheduler._prefect.server.app:factory",
        factory=True,
        workers=args.workers,
        # The socket uvicorn binds for its workers leaves Nagle's algorithm on (nodelay.py).
        http=NoDelayH11Protocol,
        **common,
    )


if __name__ == "__main__":
    main()
