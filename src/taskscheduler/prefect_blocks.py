"""Register Prefect's own block types in its database once, before several API processes start.

Each Prefect API process registers the block types it knows when it starts. Started together on
a fresh database (``prefect server start --workers N``, or N replicas), they race to insert the
same rows: the loser fails on ``uq_block_type__slug``, and its failed start-up stops the whole
server (2 of 5 starts of the two-process topology here, 2026-11-27). Registered once beforehand,
the processes start with ``PREFECT_API_BLOCKS_REGISTER_ON_START=false``, as they start with
migrations off once the database is migrated.

Run as ``python -m taskscheduler.prefect_blocks`` with the server's environment.
"""

from __future__ import annotations

import asyncio


async def register() -> None:
    """What a Prefect API process does at start-up (``run_block_auto_registration``), once."""
    from prefect.server.database import provide_database_interface
    from prefect.server.models.block_registration import run_block_auto_registration

    session = await provide_database_interface().session()
    async with session:
        await run_block_auto_registration(session=session)


if __name__ == "__main__":
    asyncio.run(register())
