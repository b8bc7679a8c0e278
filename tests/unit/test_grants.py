"""Grants: which work pools and Secret blocks a caller's tasks may use, without a server.

The rules themselves (``grants.Grants``) and the token model and requests that carry them;
the SDK applying them is in test_sdk_grants.py.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pydantic
import pytest

from taskscheduler import audit, errors, grants, tokens
from taskscheduler._prefect import docker_pool as _docker
from taskscheduler.api import errors as api_errors
from taskscheduler.api import schemas
from taskscheduler.sandbox import limits

DOCKER_ONLY = grants.Grants(pools=frozenset({"docker"}), secrets=frozenset())


# ---- the rules ---------------------------------------------------------------------------------


def test_no_grants_means_every_pool_and_secret() -> None:
    unrestricted = grants.Grants()
    assert unrestricted.unrestricted and grants.UNRESTRICTED.unrestricted
    for pool in ("process", "fast", "docker", None):
        assert unrestricted.allows_pool(pool)
    unrestricted.check_new_pool(None, "process")
    unrestricted.check_task_pool("t", None)
    unrestricted.check_secrets({"any-block"})


def test_a_task_naming_no_pool_is_checked_against_the_default_pool_and_told_what_to_choose() -> (
    None
):
    with pytest.raises(errors.PermissionDenied) as refused:
        DOCKER_ONLY.check_new_pool(None, "process")
    message = str(refused.value)
    assert "'process'" in message and "default pool" in message
    assert "choose pool 'docker'" in message
    DOCKER_ONLY.check_new_pool("docker", "process")
    grants.Grants(pools=frozenset({"process"}), secrets=frozenset()).check_new_pool(None, "process")


@pytest.mark.parametrize("pool", ["process", "fast", "elsewhere"])
def test_a_chosen_pool_outside_the_grants_is_refused(pool: str) -> None:
    with pytest.raises(errors.PermissionDenied, match=f"may not use work pool '{pool}'"):
        DOCKER_ONLY.check_new_pool(pool, "process")


def test_a_token_with_no_pool_is_told_an_admin_can_grant_one() -> None:
    nothing = grants.Grants(pools=frozenset(), secrets=frozenset())
    with pytest.raises(errors.PermissionDenied, match="may use no work pool; an admin"):
        nothing.check_new_pool("docker", "process")


def test_an_existing_task_is_checked_by_the_pool_it_is_in() -> None:
    DOCKER_ONLY.check_task_pool("report", "docker")
    with pytest.raises(errors.PermissionDenied, match="task 'report' runs in work pool 'fast'"):
        DOCKER_ONLY.check_task_pool("report", "fast")
    # A deployment made elsewhere without a pool is served on some host: only for the trusted.
    with pytest.raises(errors.PermissionDenied, match="runs in no work pool"):
        DOCKER_ONLY.check_task_pool("served", None)


def test_only_granted_secret_blocks_pass_and_the_refusal_names_the_others() -> None:
    some = grants.Grants(pools=frozenset({"docker"}), secrets=frozenset({"db-password"}))
    some.check_secrets(["db-password"])
    some.check_secrets([])
    with pytest.raises(errors.PermissionDenied) as refused:
        some.check_secrets(["db-password", "s3-key", "api-key"])
    message = str(refused.value)
    assert "Secret blocks 'api-key', 's3-key'" in message and "db-password" not in message
    with pytest.raises(errors.PermissionDenied, match="Secret block 'x';"):
        DOCKER_ONLY.check_secrets(["x"])


def test_the_pools_offered_are_the_existing_ones_the_grants_allow() -> None:
    existing = ["process", "fast", "docker", "gpu"]
    assert DOCKER_ONLY.choosable(existing) == ["docker"]
    assert grants.Grants().choosable(existing) == ["docker", "fast", "gpu", "process"]
    assert DOCKER_ONLY.choosable(["process"]) == []


def test_new_tokens_get_the_pools_for_untrusted_code() -> None:
    assert {_docker.POOL, limits.POOL} == grants.DEFAULT_POOLS


def test_a_refusal_is_forbidden_in_the_audit_log_and_403_over_http() -> None:
    refused = errors.PermissionDenied("no")
    assert audit.outcome_of(refused) == "forbidden"
    assert api_errors.status_of(refused) == 403
    # Not an OSError, which the glue would report as an unreachable database.
    assert not isinstance(refused, OSError)


# ---- the token model ---------------------------------------------------------------------------


def _token(**fields: Any) -> tokens.TokenInfo:
    return tokens.TokenInfo(
        id=str(uuid.uuid4()),
        name="t",
        scope=fields.pop("scope", tokens.Scope.WRITE),
        hint="tsk_abcd",
        created_at=dt.datetime.now(dt.UTC),
        created_by="test",
        **fields,
    )


def test_a_token_without_lists_is_unrestricted_and_one_with_lists_is_held_to_them() -> None:
    assert _token(scope=tokens.Scope.ADMIN).grants.unrestricted
    held = _token(pools=["docker", "gpu"], secrets=["db-password"]).grants
    assert held.pools == {"docker", "gpu"} and held.secrets == {"db-password"}
    assert not held.allows_pool("process")
    empty = _token(pools=[], secrets=[]).grants
    assert not empty.unrestricted and not empty.allows_pool("docker")
    shown = _token(pools=["docker"], secrets=[]).model_dump(mode="json")
    assert shown["pools"] == ["docker"] and shown["secrets"] == []


def test_token_requests_take_only_pool_and_secret_block_names() -> None:
    body = schemas.TokenCreate.model_validate(
        {"name": "ci", "scope": "write", "pools": ["docker", "gpu_1"], "secrets": ["db-pw"]}
    )
    assert body.pools == ["docker", "gpu_1"] and body.secrets == ["db-pw"]
    assert schemas.TokenCreate.model_validate({"name": "ci", "scope": "write"}).pools is None
    for bad in (
        {"pools": ["no spaces"]},
        {"secrets": ["Upper"]},
        {"pools": [f"p{i}" for i in range(grants.MAX_GRANTS + 1)]},
    ):
        with pytest.raises(pydantic.ValidationError):
            schemas.TokenCreate.model_validate({"name": "ci", "scope": "write", **bad})
        with pytest.raises(pydantic.ValidationError):
            schemas.TokenGrant.model_validate(bad)
    with pytest.raises(pydantic.ValidationError):
        schemas.TokenGrant.model_validate({"scope": "admin"})


def test_a_tokens_task_naming_no_pool_goes_to_the_sandbox_lane_when_it_may_use_it() -> None:
    def default(pools: set[str] | None) -> str:
        granted = grants.Grants(pools=None if pools is None else frozenset(pools), secrets=None)
        return granted.default_pool("process", "sandbox")

    assert default(None) == "process"  # an admin: the platform's default
    assert default({"sandbox", "docker"}) == "sandbox"  # a new write token
    assert default({"process"}) == "process"  # granted before the sandbox lane existed
    assert default({"docker"}) == "process"  # refused there, as before, naming its choices
