"""``python -m taskscheduler.store``: bring our tables to the latest revision, then exit.

The compose stack's one-shot ``migrate`` job runs it after Prefect's own migrations; the task
API also migrates on start (idempotent and locked), so this only makes the order explicit.
"""

from __future__ import annotations

import asyncio

from taskscheduler import store
from taskscheduler.settings import get_settings


async def _main() -> None:
    engine = store.create_engine(get_settings(), pooled=False)
    try:
        await store.migrate(engine)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(_main())
    print(f"taskscheduler: schema {store.SCHEMA} is at the latest revision")
