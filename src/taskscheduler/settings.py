"""Settings of the task scheduler, read from ``TASKS_*`` environment variables.

Prefect's own ``PREFECT_*`` settings stay Prefect's: the API address comes from
``PREFECT_API_URL`` so that our SDK and CLI and Prefect's tools talk to the same server.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_API_URL = "http://127.0.0.1:4200/api"
# Secrets that must never guard anything outside development (template values people copy).
WEAK_SECRETS = frozenset({"", "changethis", "changeme", "secret", "admin", "password"})


def _default_project_dir() -> Path:
    """The checkout holding ``flows/``: next to ``src/`` in development, else the cwd."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "flows" / "run_task.py").is_file():
            return parent
    return Path.cwd()


class Settings(BaseSettings):
    """Where the platform lives and the defaults of new tasks."""

    model_config = SettingsConfigDict(env_prefix="TASKS_", extra="ignore")

    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/taskscheduler",
        description="PostgreSQL database holding Prefect's state and ours (any driver prefix).",
    )
    host: str = Field(default="127.0.0.1", description="Address the local services bind to.")
    prefect_port: int = Field(default=4200, description="Port of the Prefect server and UI.")
    state_dir: Path = Field(
        default=Path(".run"), description="Where `make up` keeps PID files and service logs."
    )
    project_dir: Path = Field(
        default_factory=_default_project_dir,
        description="Checkout holding flows/ that the process worker runs from.",
    )
    default_pool: str = Field(default="process", description="Work pool of tasks that name none.")
    token_default_pool: str = Field(
        default="sandbox",
        description=(
            "Work pool of tasks that name none when a token with grants (not an admin one)"
            " that may use it creates them: the lane for other people's code."
        ),
    )
    worker_limit: int = Field(
        default_factory=lambda: 4 * (os.cpu_count() or 1),
        ge=0,
        description=(
            "Most jobs the process worker runs at once (0: no limit). Each starts a Python"
            " interpreter with Prefect, seconds of CPU; unbounded, a backlog of due jobs starts"
            " them all together and starves the server."
        ),
    )
    container_project_dir: str = Field(
        default="/opt/taskscheduler",
        description="Where flows/ lives inside the job image of container pools.",
    )
    container_pools: set[str] = Field(
        default={"docker"},
        description="Work pools whose jobs run in the job image, from container_project_dir.",
    )
    docker_image: str | None = Field(
        default=None,
        description=(
            "Job image of the docker pool, pulled when missing; unset: docker/ensure.sh builds"
            " it on this machine (tagged by a hash of its inputs) and starts Docker if needed."
        ),
    )
    run_user: str = Field(
        default="taskscheduler",
        description="System user the process and fast lanes' workers run as (created by `make up` "
        "when it runs as root); it cannot read the state directory or its credentials.",
    )
    sandbox_writable: list[Path] = Field(
        default_factory=list,
        description="Host directories the process and fast lanes' sandboxes may write (bound "
        "read-write at the same path; JSON list). None by default: a job writes only its own "
        "private /tmp. Whatever is listed here, every job of those lanes can read and write.",
    )
    actor: str = Field(
        default_factory=lambda: os.environ.get("USER", "local"),
        description="Who the CLI and SDK act as when not behind the API.",
    )

    environment: Literal["development", "production"] = Field(
        default="development",
        description="Outside development, missing or template secrets are refused at start-up.",
    )
    api_port: int = Field(default=8000, description="Port of our REST API (uvicorn).")
    refusal_window: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Seconds of an anonymous caller's refusal window: its first refusal in the window is"
            " audited in full, the others in one summary row once the window closes."
        ),
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1,
        description=(
            "Largest request body the API and the web page accept; a larger one is refused with"
            " 413 before it is read. The compose proxy's client_max_body_size says the same."
        ),
    )
    prefect_ui: str | None = Field(
        default=None,
        description="The Prefect UI's address as users reach it, for links from our web page "
        "(default: the Prefect API's address without /api).",
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="First admin bearer token of the REST API, registered (hashed) at start-up.",
    )
    prefect_auth_string: SecretStr | None = Field(
        default=None,
        description="user:password guarding the Prefect API (basic auth); generated by `make up`.",
    )
    encryption_key: SecretStr | None = Field(
        default=None,
        description="Fernet key encrypting Prefect block data at rest; generated by `make up`.",
    )
    gate_key: SecretStr | None = Field(
        default=None,
        description="Key that signs each job's credential for its own run (the job gateway "
        "checks them); generated by `make up`. Only workers and the gateway hold it.",
    )
    prefect_db_password: SecretStr | None = Field(
        default=None,
        description="Password of the Prefect server's database role (<db>_prefect); generated "
        "by `make up`.",
    )
    api_db_password: SecretStr | None = Field(
        default=None,
        description="Password of the REST API's database role (<db>_api); generated by `make up`.",
    )
    runtime_dir: Path | None = Field(
        default=None,
        description="Where the platform keeps what its sandboxed lanes must reach: the job "
        "gateway's door and the run user's home. Default /run/taskscheduler-<port> as root, "
        "else a directory of the user's under the system's temporary directory.",
    )
    door_dir: Path | None = Field(
        default=None,
        description="Directory holding the job gateway's socket, the only door from a job to the "
        "platform (mounted read-only into job sandboxes and containers); default runtime/door.",
    )

    @model_validator(mode="after")
    def _no_default_secrets_outside_development(self) -> Settings:
        """Template or empty secrets are refused; missing ones are generated only in development."""
        if self.environment != "development":
            for field in (
                "admin_token",
                "prefect_auth_string",
                "encryption_key",
                "gate_key",
                "prefect_db_password",
                "api_db_password",
            ):
                value: SecretStr | None = getattr(self, field)
                if value is not None and value.get_secret_value().strip().lower() in WEAK_SECRETS:
                    raise ValueError(
                        f"TASKS_{field.upper()} is empty or a template value; set a strong secret"
                    )
        return self

    @property
    def prefect_api_url(self) -> str:
        """The Prefect API address: ``PREFECT_API_URL`` when set, else the local server."""
        return os.environ.get("PREFECT_API_URL") or DEFAULT_API_URL

    @property
    def prefect_ui_url(self) -> str:
        """Where people open the Prefect UI: ``TASKS_PREFECT_UI_URL``, else beside the API."""
        return (self.prefect_ui or self.prefect_api_url.removesuffix("/api")).rstrip("/")

    @property
    def runtime(self) -> Path:
        """The runtime directory (see ``runtime_dir``): outside the state directory, whose
        parents the run user may not be able to traverse (a test's temporary directory)."""
        if self.runtime_dir is not None:
            return self.runtime_dir
        if os.geteuid() == 0:
            return Path("/run") / f"taskscheduler-{self.prefect_port}"
        return Path(tempfile.gettempdir()) / f"taskscheduler-{os.geteuid()}-{self.prefect_port}"

    @property
    def door(self) -> Path:
        """The directory of the job gateway's socket."""
        return self.door_dir or self.runtime / "door"

    @property
    def asyncpg_url(self) -> str:
        """The database URL with SQLAlchemy's asyncpg driver, as Prefect's server needs it."""
        _, _, rest = self.database_url.partition("://")
        return f"postgresql+asyncpg://{rest}"


@functools.cache
def get_settings() -> Settings:
    """The settings, read once on first use (never at import time)."""
    return Settings()
