"""Settings of the task scheduler, read from ``TASKS_*`` environment variables.

Prefect's own ``PREFECT_*`` settings stay Prefect's: the API address comes from
``PREFECT_API_URL`` so that our SDK and CLI and Prefect's tools talk to the same server.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_API_URL = "http://127.0.0.1:4200/api"


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
    container_project_dir: str = Field(
        default="/opt/taskscheduler",
        description="Where flows/ lives inside the job image of container pools.",
    )
    container_pools: set[str] = Field(
        default={"docker"},
        description="Work pools whose jobs run in the job image, from container_project_dir.",
    )
    actor: str = Field(
        default_factory=lambda: os.environ.get("USER", "local"),
        description="Who the CLI and SDK act as when not behind the API.",
    )

    @property
    def prefect_api_url(self) -> str:
        """The Prefect API address: ``PREFECT_API_URL`` when set, else the local server."""
        return os.environ.get("PREFECT_API_URL") or DEFAULT_API_URL

    @property
    def asyncpg_url(self) -> str:
        """The database URL with SQLAlchemy's asyncpg driver, as Prefect's server needs it."""
        _, _, rest = self.database_url.partition("://")
        return f"postgresql+asyncpg://{rest}"


@functools.cache
def get_settings() -> Settings:
    """The settings, read once on first use (never at import time)."""
    return Settings()
