"""Grants: which work pools and Secret blocks a caller's tasks may use, without a server.

The rules themselves (``grants.Grants``) and how a refusal is reported.
"""

from __future__ import annotations

import pytest

from taskscheduler import _docker, audit, errors, grants
from taskscheduler.api import errors as api_errors

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


def test_new_tokens_get_the_pool_for_untrusted_code() -> None:
    assert {_docker.POOL} == grants.DEFAULT_POOLS


def test_a_refusal_is_forbidden_in_the_audit_log_and_403_over_http() -> None:
    refused = errors.PermissionDenied("no")
    assert audit.outcome_of(refused) == "forbidden"
    assert api_errors.status_of(refused) == 403
    # Not an OSError, which the glue would report as an unreachable database.
    assert not isinstance(refused, OSError)
