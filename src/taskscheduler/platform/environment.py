"""The environment of every child the platform starts, one builder per kind of child.

Each child sees only the secrets it needs: never the workers, whose children run user code,
the admin token or the encryption key (the Prefect auth string does reach them: flow runs must
talk to the API). The ``TASKS_*`` settings are passed on so that flow runs started by a worker
use the same database and project directory as the platform that started them. The caller's
``extra_env`` always wins over our defaults.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from taskscheduler.platform.addresses import Addresses
from taskscheduler.platform.keys import Keys
from taskscheduler.platform.postgres import Database
from taskscheduler.reliability import ReliabilitySettings
from taskscheduler.settings import Settings
from taskscheduler.tuning import TuningSettings

# Secrets only the process that needs them may see.
# Never passed on from the shell that starts the platform: its keys, and the `tasks` CLI's
# login (a bearer token) of whoever runs `make up`.
PRIVATE_ENV = (
    "TASKS_ADMIN_TOKEN",
    "TASKS_ENCRYPTION_KEY",
    "TASKS_GATE_KEY",
    "TASKS_TOKEN",
    "TASKS_URL",
)

# The worker asks for scheduled runs every second (default 10 s) so that a job due now starts
# within about a second, which keeps both interactive use and the integration tests snappy;
# one tiny query a second is nothing for a local server. It claims runs up to 2 s ahead of
# their start (default 10 s) to hide the ~1-2 s it takes to start the flow-run process, while
# keeping short the window in which a job that is still "waiting" has already been claimed.
WORKER_QUERY_SECONDS = "1"
WORKER_PREFETCH_SECONDS = "2"


class Environments:
    """Builds the environment of each kind of child from the settings, addresses and keys."""

    def __init__(
        self,
        settings: Settings,
        extra_env: Mapping[str, str],
        addresses: Addresses,
        keys: Keys,
        database: Database,
    ) -> None:
        self.settings = settings
        self.extra_env = extra_env  # the platform's own, shared
        self.addresses = addresses
        self.keys = keys
        self.database = database

    def tuning(self) -> TuningSettings:
        """The tuning settings: ``TASKS_*`` of the environment, overridden by ``extra_env``."""
        fields = TuningSettings.model_fields
        overrides = {
            key[len("TASKS_") :].lower(): value
            for key, value in self.extra_env.items()
            if key.startswith("TASKS_") and key[len("TASKS_") :].lower() in fields
        }
        return TuningSettings(**overrides)  # type: ignore[arg-type]

    def base(self) -> dict[str, str]:
        """Environment of every child: ours plus the API address and our own settings."""
        env = dict(os.environ)
        env.update(settings_env(self.settings))
        # Prefect's canonical names (PREFECT_SERVER_*), which take precedence over their
        # legacy aliases (PREFECT_UI_API_URL, PREFECT_API_DATABASE_*) a shell may still set.
        env.update(
            PREFECT_API_URL=self.addresses.api_url,
            PREFECT_SERVER_UI_API_URL=self.addresses.api_url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            # Every client of the Prefect API authenticates (workers, flow runs, our API, CLI).
            PREFECT_API_AUTH_STRING=self.keys.prefect_auth_string,
            # Resolved here, once: a child running as another user would default elsewhere.
            TASKS_RUNTIME_DIR=str(self.settings.runtime),
            TASKS_DOOR_DIR=str(self.settings.door),
        )
        for name in PRIVATE_ENV:
            env.pop(name, None)
        env.update(self.extra_env)
        return env

    def server(self) -> dict[str, str]:
        """Environment of the Prefect server: where its database is and to migrate it."""
        creds = self.keys.credentials
        env = self.base()
        env.update(
            PREFECT_SERVER_DATABASE_CONNECTION_URL=self.database.prefect_url(creds),
            PREFECT_SERVER_DATABASE_MIGRATE_ON_START="true",
            # Not left open: basic auth on every API call, CSRF tokens for state changes,
            # cross-origin calls only from the UI, block data under our own encryption key.
            PREFECT_SERVER_API_AUTH_STRING=self.keys.prefect_auth_string,
            PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED="true",
            PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS=self.addresses.ui_url,
            PREFECT_SERVER_ENCRYPTION_KEY=creds.encryption_key.get_secret_value(),
        )
        env.update(ReliabilitySettings().server_env())  # retention, late detection
        env.update(self.tuning().server_env())  # empty unless TASKS_TUNED / TASKS_API_WORKERS
        env.update(self.extra_env)
        return env

    def worker(self) -> dict[str, str]:
        """Environment of a worker: poll often so jobs start promptly."""
        env = self.base()
        env.update(
            PREFECT_WORKER_QUERY_SECONDS=WORKER_QUERY_SECONDS,
            PREFECT_WORKER_PREFETCH_SECONDS=WORKER_PREFETCH_SECONDS,
        )
        env.update(ReliabilitySettings().job_env())  # heartbeats of the flow runs
        env.update(self.extra_env)
        return env

    def client(self) -> dict[str, str]:
        """A worker's environment without the database: for children that speak to Prefect only."""
        env = self.worker()
        env.pop("TASKS_DATABASE_URL", None)
        return env

    def minting(self) -> dict[str, str]:
        """Environment of a worker that starts jobs: no database, and the gate key it signs
        each job's credential with."""
        env = self.client()
        env["TASKS_GATE_KEY"] = self.keys.gate_key
        return env

    def lane(self, home: Path, *, mints: bool) -> dict[str, str]:
        """Environment of a worker running as the run user: no database, a home of that
        user's, and (``mints``) the gate key."""
        env = self.minting() if mints else self.client()
        env.update(HOME=str(home), PREFECT_HOME=str(home / ".prefect"))
        return env

    def api(self) -> dict[str, str]:
        """Environment of our REST API: the first admin token and its own database role."""
        creds = self.keys.credentials
        env = self.base()
        env["TASKS_ADMIN_TOKEN"] = creds.admin_token.get_secret_value()
        env["TASKS_DATABASE_URL"] = self.database.api_url(creds)  # never the superuser
        env.update(self.extra_env)
        return env

    def gate(self) -> dict[str, str]:
        """Environment of the job gateway: the Prefect auth string, the gate key, the door."""
        env = self.base()
        env.update(
            TASKS_DATABASE_URL=self.database.api_url(self.keys.credentials),
            TASKS_PREFECT_AUTH_STRING=self.keys.prefect_auth_string,
            TASKS_GATE_KEY=self.keys.gate_key,
        )
        env.update(self.extra_env)
        return env


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as the ``TASKS_*`` variables that would produce them."""
    env: dict[str, str] = {}
    dumped = settings.model_dump(mode="json")
    for name, value in dumped.items():
        raw = getattr(settings, name)
        if raw is None:
            continue
        if isinstance(raw, SecretStr):
            value = raw.get_secret_value()  # the dump masks secrets; children need them
        # Complex fields travel as JSON, which is how pydantic-settings reads them back.
        env[f"TASKS_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env
