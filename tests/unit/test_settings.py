"""Settings: the ``TASKS_`` prefix and the database URL Prefect's server needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskscheduler.settings import DEFAULT_API_URL, Settings, get_settings


@pytest.mark.parametrize(
    ("database_url", "expected"),
    [
        (
            "postgresql://postgres@127.0.0.1:5432/tasks",
            "postgresql+asyncpg://postgres@127.0.0.1:5432/tasks",
        ),
        (
            "postgresql+psycopg://u:p@db:5433/tasks",
            "postgresql+asyncpg://u:p@db:5433/tasks",
        ),
        (
            "postgresql+asyncpg://postgres@localhost/tasks",
            "postgresql+asyncpg://postgres@localhost/tasks",
        ),
    ],
)
def test_asyncpg_url_swaps_any_driver_for_asyncpg(database_url: str, expected: str) -> None:
    """Whatever driver the URL names, Prefect's server gets the asyncpg one."""
    assert Settings(database_url=database_url).asyncpg_url == expected


def test_settings_are_read_from_tasks_prefixed_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``TASKS_*`` variables set the fields; unprefixed names are ignored."""
    monkeypatch.setenv("TASKS_DATABASE_URL", "postgresql://x@h:1/db")
    monkeypatch.setenv("TASKS_PREFECT_PORT", "4999")
    monkeypatch.setenv("TASKS_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("PREFECT_PORT", "1234")
    monkeypatch.setenv("DATABASE_URL", "postgresql://ignored/ignored")

    settings = Settings()

    assert settings.database_url == "postgresql://x@h:1/db"
    assert settings.prefect_port == 4999
    assert settings.state_dir == tmp_path


def test_prefect_api_url_follows_prefect_api_url_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The API address is Prefect's own setting, read when asked, with a local default."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert Settings().prefect_api_url == DEFAULT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", "http://example:1/api")
    assert Settings().prefect_api_url == "http://example:1/api"


def test_get_settings_reads_once_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    """`get_settings` is cached, so changing the environment needs ``cache_clear``."""
    get_settings.cache_clear()
    monkeypatch.setenv("TASKS_PREFECT_PORT", "4001")
    first = get_settings()
    monkeypatch.setenv("TASKS_PREFECT_PORT", "4002")
    assert get_settings() is first
    get_settings.cache_clear()
    assert get_settings().prefect_port == 4002
    get_settings.cache_clear()


def test_body_limit_is_one_mib_unless_tasks_max_body_bytes_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TASKS_MAX_BODY_BYTES", raising=False)
    assert Settings().max_body_bytes == 1024 * 1024
    monkeypatch.setenv("TASKS_MAX_BODY_BYTES", "4096")
    assert Settings().max_body_bytes == 4096
    monkeypatch.setenv("TASKS_MAX_BODY_BYTES", "0")
    with pytest.raises(ValueError):
        Settings()


def test_every_setting_says_what_it_is_for() -> None:
    assert all(field.description for field in Settings.model_fields.values())
