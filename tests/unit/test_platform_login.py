"""`make up` saves the local admin login for the `tasks` CLI, and keeps a login to another
platform (``taskscheduler.platform.cli._write_login``)."""

from __future__ import annotations

import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from pydantic import SecretStr

from taskscheduler.client import config
from taskscheduler.platform import cli


def fake_platform(url: str, token: str) -> Any:
    return SimpleNamespace(
        service_api_url=url, credentials=SimpleNamespace(admin_token=SecretStr(token))
    )


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    return tmp_path / "taskscheduler" / "client.json"


def test_up_saves_the_admin_login_0600_when_there_is_none(config_home: Path) -> None:
    cli._write_login(cast(Any, fake_platform("http://127.0.0.1:8000/", "tsk_admin")))
    assert config.read(config_home) == config.Config("http://127.0.0.1:8000", "tsk_admin")
    assert stat.S_IMODE(config_home.stat().st_mode) == 0o600


def test_up_renews_its_own_login_and_keeps_one_to_another_platform(
    config_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config.save(config.Config("http://127.0.0.1:8000", "tsk_old"), config_home)
    cli._write_login(cast(Any, fake_platform("http://127.0.0.1:8000", "tsk_new")))
    assert config.read(config_home) == config.Config("http://127.0.0.1:8000", "tsk_new")

    config.save(config.Config("https://tasks.example.org", "tsk_theirs"), config_home)
    cli._write_login(cast(Any, fake_platform("http://127.0.0.1:8000", "tsk_new")))
    assert config.read(config_home) == config.Config("https://tasks.example.org", "tsk_theirs")
    assert "kept" in capsys.readouterr().out
