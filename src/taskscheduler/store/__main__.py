"""``python -m taskscheduler.store``: the database roles and our tables, then exit.

What the compose stack's one-shot ``migrate`` job runs after Prefect's own migrations, with
the bootstrap URL (``TASKS_DATABASE_URL``: a role that may create roles) and the roles'
passwords (``TASKS_PREFECT_DB_PASSWORD``, ``TASKS_API_DB_PASSWORD``). ``make up`` does the
same through the platform supervisor. See ``taskscheduler.dbroles``.
"""

from __future__ import annotations

import asyncio

from taskscheduler import dbroles, store
from taskscheduler.settings import get_settings


def main() -> None:
    """Bootstrap the roles and migrate; exit non-zero naming what is missing."""
    settings = get_settings()
    if settings.prefect_db_password is None or settings.api_db_password is None:
        raise SystemExit("error: set TASKS_PREFECT_DB_PASSWORD and TASKS_API_DB_PASSWORD")
    roles = asyncio.run(
        dbroles.bootstrap(
            settings.database_url,
            prefect_password=settings.prefect_db_password.get_secret_value(),
            api_password=settings.api_db_password.get_secret_value(),
        )
    )
    print(f"taskscheduler: roles {', '.join(roles.all)}; schema {store.SCHEMA} is current")


if __name__ == "__main__":
    main()
