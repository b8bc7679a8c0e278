"""The platform's secrets: from ``TASKS_*`` settings, else generated once into the state dir.

The Prefect API is not left open: every client authenticates with a basic-auth string, and
block data is encrypted under a key of ours. A database whose blocks Prefect encrypted with a
key of its own before we set one keeps that key, so its blocks stay readable.
"""

from __future__ import annotations

import functools

from taskscheduler import credentials
from taskscheduler.platform.postgres import Database
from taskscheduler.settings import Settings


class Keys:
    """The platform's credentials, looked up (or made) on first use only."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database

    @functools.cached_property
    def credentials(self) -> credentials.Credentials:
        """The platform's secrets (settings, else generated once into the state dir)."""
        existing = None
        if self.settings.encryption_key is None and not credentials.read_file(self.settings).get(
            "encryption_key"
        ):
            existing = self.database.prefect_encryption_key()
        return credentials.ensure(self.settings, existing_encryption_key=existing)

    @property
    def prefect_auth_string(self) -> str:
        """The basic-auth string of the Prefect API (``user:password``)."""
        return self.credentials.prefect_auth_string.get_secret_value()

    @property
    def gate_key(self) -> str:
        """The key workers sign each job's credential with and the gateway checks it by."""
        return self.credentials.gate_key.get_secret_value()

    def database_passwords(self) -> dict[str, str]:
        """The database roles' passwords, by what they guard (for checks that none leaks)."""
        creds = self.credentials
        return {
            "Prefect's database password": creds.prefect_db_password.get_secret_value(),
            "API's database password": creds.api_db_password.get_secret_value(),
        }
