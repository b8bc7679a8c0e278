"""``python -m taskscheduler.fastlane [--pool fast] [--name N] [--processes P]``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from taskscheduler._prefect import rest as _api_module
from taskscheduler.fastlane.settings import FastLaneSettings
from taskscheduler.fastlane.worker import FastWorker


async def _serve(settings: FastLaneSettings) -> None:
    url, headers = _api_module.from_prefect_settings()
    worker = FastWorker.at(settings, url, headers=headers)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    await worker.run()


def main(argv: list[str] | None = None) -> int:
    """Run a fast worker until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m taskscheduler.fastlane",
        description="Serve a work pool with warm processes, starting each job on its instant.",
    )
    parser.add_argument("--pool", help="work pool (default TASKS_FAST_POOL or 'fast')")
    parser.add_argument("--name", help="worker name (default TASKS_FAST_NAME)")
    parser.add_argument("--processes", type=int, help="warm processes (TASKS_FAST_PROCESSES)")
    parser.add_argument(
        "--single-use",
        action="store_true",
        default=None,
        help="sandbox lane: a fresh sandbox per job, held to its limits (TASKS_FAST_SINGLE_USE)",
    )
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    settings = FastLaneSettings(**overrides)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(_serve(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
