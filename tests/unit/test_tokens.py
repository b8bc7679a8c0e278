"""Tokens, scopes and the auth policy, without a server."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from taskscheduler import credentials, tokens
from taskscheduler.api import auth, schemas
from taskscheduler.settings import Settings


def test_generated_tokens_are_long_random_and_distinct() -> None:
    made = {tokens.generate() for _ in range(100)}
    assert len(made) == 100
    assert all(t.startswith(tokens.PREFIX) and len(t) >= 40 for t in made)


def test_only_the_sha256_of_a_token_is_stored() -> None:
    token = tokens.generate()
    assert tokens.hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert token not in tokens.hash_token(token)


@pytest.mark.parametrize(
    ("held", "needed", "allowed"),
    [
        ("read", "read", True),
        ("read", "write", False),
        ("read", "admin", False),
        ("write", "read", True),
        ("write", "write", True),
        ("write", "admin", False),
        ("admin", "read", True),
        ("admin", "write", True),
        ("admin", "admin", True),
    ],
)
def test_scopes_are_ordered_read_write_admin(held: str, needed: str, allowed: bool) -> None:
    assert tokens.Scope(held).allows(tokens.Scope(needed)) is allowed


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/v1/tasks", "read"),
        ("GET", "/v1/audit", "read"),
        ("POST", "/v1/tasks", "write"),
        ("PATCH", "/v1/tasks/x", "write"),
        ("DELETE", "/v1/tasks/x", "write"),
        ("POST", "/v1/jobs/x/cancel", "write"),
        ("GET", "/v1/tokens", "admin"),
        ("DELETE", "/v1/tokens/x", "admin"),
        ("GET", "/healthz", None),
        ("GET", "/metrics", None),
        ("GET", "/openapi.json", None),
    ],
)
def test_the_scope_a_call_needs_follows_its_path_and_method(
    method: str, path: str, scope: str | None
) -> None:
    needed = auth.needed_scope(method, path)
    assert (needed.value if needed else None) == scope


def test_cursors_round_trip_and_refuse_forgeries() -> None:
    assert schemas.decode_cursor(schemas.encode_cursor(150)) == 150
    assert schemas.decode_cursor(None) == 0
    for bad in ("nope", "eDox", schemas.encode_cursor(1) + "!!"):
        with pytest.raises(ValueError):
            schemas.decode_cursor(bad)


def test_generated_credentials_are_private_and_stable(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    first = credentials.ensure(settings)
    mode = stat.S_IMODE(os.stat(credentials.path(settings)).st_mode)
    assert mode == 0o600
    again = credentials.ensure(settings)
    assert again == first
    assert credentials.prefect_auth_string(settings) == first.prefect_auth_string.get_secret_value()


def test_explicit_settings_win_over_generated_credentials(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, prefect_auth_string="me:a-long-chosen-password")
    assert credentials.ensure(settings).prefect_auth_string.get_secret_value() == (
        "me:a-long-chosen-password"
    )


def test_nothing_is_generated_outside_development(tmp_path: Path) -> None:
    from taskscheduler import errors

    with pytest.raises(errors.PlatformUnavailable, match="TASKS_PREFECT_AUTH_STRING"):
        credentials.ensure(Settings(state_dir=tmp_path, environment="production"))


@pytest.mark.parametrize("weak", ["", "changethis", "  secret "])
def test_template_secrets_are_refused_outside_development(weak: str) -> None:
    with pytest.raises(ValueError, match="TASKS_ADMIN_TOKEN"):
        Settings(environment="production", admin_token=weak)
    Settings(environment="development", admin_token=weak)  # tolerated while developing
