"""The REST API for real: a uvicorn process started by the platform, real Prefect, real PostgreSQL.

Every endpoint and status code, each scope, revocation, the audit rows of allowed and refused
calls, secrets that never leak, and the Prefect API refusing callers without its auth string.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import secrets
import select
import socket
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from schemathesis import checks
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from taskscheduler.platform import LocalPlatform
from tests.integration.helpers import (
    cli,
    cli_json,
    from_own_address,
    stored_in_prefect,
    unique,
    wait_for,
)

HELLO = 'def main(who="world"):\n    print(f"hello {who}")\n    return 42\n'


def new_token(admin: httpx.Client, scope: str, **grants: list[str]) -> dict[str, Any]:
    """A new token of ``scope`` (with ``pools`` and ``secrets`` when given), as created."""
    created = admin.post(
        "/v1/tokens", json={"name": unique(f"test-{scope}"), "scope": scope, **grants}
    )
    assert created.status_code == 201, created.text
    made: dict[str, Any] = created.json()
    return made


def bearer_client(platform: LocalPlatform, token: str) -> httpx.Client:
    """A client of the platform's REST API holding ``token``."""
    return httpx.Client(
        base_url=platform.service_api_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


def client_with(
    platform: LocalPlatform, admin: httpx.Client, scope: str, **grants: list[str]
) -> httpx.Client:
    """A client holding a new token of ``scope`` (with ``pools`` and ``secrets`` when given)."""
    return bearer_client(platform, new_token(admin, scope, **grants)["token"])


def audit_rows(admin: httpx.Client, **filters: str) -> list[dict[str, Any]]:
    response = admin.get("/v1/audit", params=filters)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ---- open endpoints and the Prefect server's own protection --------------------------------


def test_healthz_needs_no_token_and_checks_prefect_and_the_database(
    platform: LocalPlatform,
) -> None:
    response = httpx.get(f"{platform.service_api_url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "prefect": "ok", "database": "ok"}


def test_metrics_are_prometheus_text_with_requests_latency_and_jobs_by_state(
    platform: LocalPlatform, admin: httpx.Client
) -> None:
    assert admin.get("/v1/tasks").status_code == 200
    body = httpx.get(f"{platform.service_api_url}/metrics").text
    assert 'taskscheduler_api_requests_total{method="GET",route="/v1/tasks",status="200"}' in body
    assert "taskscheduler_api_request_duration_seconds_bucket" in body
    assert 'taskscheduler_jobs{state="completed"}' in body


def test_the_prefect_api_refuses_callers_without_its_auth_string(platform: LocalPlatform) -> None:
    assert httpx.get(f"{platform.api_url}/admin/version").status_code == 401
    assert httpx.post(f"{platform.api_url}/flows/filter", json={}).status_code in (401, 403)
    user, _, password = platform.prefect_auth_string.partition(":")
    authed = httpx.get(f"{platform.api_url}/admin/version", auth=(user, password))
    assert authed.status_code == 200
    # With the auth string but without a CSRF token, a state change is still refused.
    no_csrf = httpx.post(f"{platform.api_url}/flows/filter", json={}, auth=(user, password))
    assert no_csrf.status_code == 403
    # The token the server hands this client (``_prefect/server/csrf`` checks it), used twice
    # (the second check is answered from memory), then a guess for the same client.
    client = unique("csrf-client")
    token = httpx.get(
        f"{platform.api_url}/csrf-token", params={"client": client}, auth=(user, password)
    ).json()["token"]
    for sent, status in ((token, 200), (token, 200), ("0" * 64, 403)):
        answer = httpx.post(
            f"{platform.api_url}/flows/filter",
            json={},
            auth=(user, password),
            headers={"Prefect-Csrf-Token": sent, "Prefect-Csrf-Client": client},
        )
        assert answer.status_code == status, answer.text
    env = platform.server_env()
    assert env["PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED"] == "true"
    assert env["PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS"] == platform.ui_url
    assert env["PREFECT_SERVER_ENCRYPTION_KEY"]
    assert "TASKS_ADMIN_TOKEN" not in platform.worker_env(), "user code never sees the admin token"


# ---- authentication and scopes -----------------------------------------------------------------


def test_no_token_or_an_unknown_one_is_401_and_refused_changes_are_audited(
    platform: LocalPlatform, admin: httpx.Client
) -> None:
    name = unique()
    since = now()
    # An address of its own: the refusal window of this caller starts with this test.
    with from_own_address(platform.service_api_url) as client:
        assert client.get("/v1/tasks").status_code == 401
        offered = unique("req")
        refused = client.post(
            "/v1/tasks", json={"name": name, "code": HELLO}, headers={"X-Request-ID": offered}
        )
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        ours = refused.headers["X-Request-ID"]
        assert ours and ours != offered, "an anonymous caller does not choose the request id"
        wrong = client.delete(f"/v1/tasks/{name}", headers={"Authorization": "Bearer tsk_nope"})
        assert wrong.status_code == 401
        # Even a malformed body is refused for want of a token, before it is parsed.
        garbled = client.post(
            "/v1/tasks", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert garbled.status_code == 401
    # The first refusal of the window is written in full, under our id; the others are counted.
    rows = [r for r in audit_rows(admin, actor="anonymous", since=since.isoformat())]
    mine = [r for r in rows if r["request_id"] == ours]
    assert [(r["action"], r["outcome"], r["actor_kind"]) for r in mine] == [
        ("task.create", "unauthorized", "anonymous")
    ]
    assert mine[0]["detail"].startswith("from 127.")
    assert not any(r["request_id"] == offered for r in rows)
    assert audit_rows(admin, task=name) == []


def test_each_scope_allows_what_it_should_and_403_otherwise(
    platform: LocalPlatform, admin: httpx.Client
) -> None:
    name = unique()
    with (
        client_with(platform, admin, "read") as reader,
        client_with(platform, admin, "write", pools=["process"]) as writer,
    ):
        assert reader.get("/v1/tasks").status_code == 200
        assert reader.get("/v1/audit").status_code == 200
        forbidden = reader.post("/v1/tasks", json={"name": name, "code": HELLO})
        assert forbidden.status_code == 403
        assert "write" in forbidden.json()["detail"]
        assert reader.get("/v1/tokens").status_code == 403
        assert writer.post("/v1/tasks", json={"name": name, "code": HELLO}).status_code == 201
        assert writer.get("/v1/tokens").status_code == 403
        assert writer.post("/v1/tokens", json={"name": "x", "scope": "admin"}).status_code == 403
        assert admin.get("/v1/tokens").status_code == 200
        rows = audit_rows(admin, task=name)
        assert [(r["action"], r["outcome"]) for r in rows] == [
            ("task.create", "ok"),
            ("task.create", "forbidden"),
        ]
        assert rows[0]["actor_kind"] == "token" and rows[0]["source"] == "api"
        assert rows[0]["actor_name"].startswith("test-write")
        assert rows[0]["code_sha256_after"]
        admin.delete(f"/v1/tasks/{name}")


def test_tokens_are_shown_once_listed_without_secrets_and_revoked_for_good(
    platform: LocalPlatform, admin: httpx.Client
) -> None:
    created = admin.post("/v1/tokens", json={"name": unique("revokee"), "scope": "read"})
    assert created.status_code == 201
    token, token_id = created.json()["token"], created.json()["id"]
    listed = admin.get("/v1/tokens")
    assert token not in listed.text
    mine = next(t for t in listed.json() if t["id"] == token_id)
    assert mine["scope"] == "read" and mine["revoked_at"] is None
    headers = {"Authorization": f"Bearer {token}"}
    base = platform.service_api_url
    assert httpx.get(f"{base}/v1/tasks", headers=headers).status_code == 200
    assert admin.delete(f"/v1/tokens/{token_id}").status_code == 204
    assert httpx.get(f"{base}/v1/tasks", headers=headers).status_code == 401
    assert admin.delete("/v1/tokens/00000000-0000-0000-0000-000000000000").status_code == 404
    assert admin.delete("/v1/tokens/not-a-uuid").status_code == 404
    actions = {(r["action"], r["outcome"]) for r in audit_rows(admin, action="token.revoke")}
    assert ("token.revoke", "ok") in actions and ("token.revoke", "not_found") in actions
    bad = admin.post("/v1/tokens", json={"name": "x", "scope": "root"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "scope"]


# ---- tasks and jobs -----------------------------------------------------------------------------


def test_task_lifecycle_through_every_task_endpoint(admin: httpx.Client) -> None:
    name = unique()
    created = admin.post(
        "/v1/tasks", json={"name": name, "code": HELLO, "cron": "0 9 * * *", "timezone": "UTC"}
    )
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["name"] == name and task["state"] == "active" and task["next_runs"]
    assert all(t.endswith("Z") for t in task["next_runs"]), "times are ISO 8601 UTC"

    assert admin.post("/v1/tasks", json={"name": name, "code": HELLO}).status_code == 409
    assert admin.get(f"/v1/tasks/{name}").json()["id"] == task["id"]
    assert admin.get(f"/v1/tasks/{unique()}").status_code == 404

    updated = admin.patch(f"/v1/tasks/{name}", json={"code": HELLO.replace("42", "43")})
    assert updated.status_code == 200 and updated.json()["version"] == 2
    assert admin.patch(f"/v1/tasks/{name}", json={}).status_code == 422
    assert admin.patch(f"/v1/tasks/{unique()}", json={"retries": 1}).status_code == 404

    paused = admin.post(f"/v1/tasks/{name}/pause")
    assert paused.status_code == 200 and paused.json()["state"] == "paused"
    resumed = admin.post(f"/v1/tasks/{name}/resume")
    assert resumed.status_code == 200 and resumed.json()["state"] == "active"

    at = (now() + dt.timedelta(hours=2)).isoformat()
    scheduled = admin.post(f"/v1/tasks/{name}/schedule", json={"at": at})
    assert scheduled.status_code == 201
    job_id = scheduled.json()["job_id"]
    assert admin.get(f"/v1/jobs/{job_id}").json()["state"] == "pending"

    later = (now() + dt.timedelta(hours=3)).isoformat()
    moved = admin.post(f"/v1/jobs/{job_id}/reschedule", json={"at": later})
    assert moved.status_code == 200
    new_id = moved.json()["job_id"]
    assert new_id != job_id
    cancelled = admin.post(f"/v1/jobs/{new_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert admin.post(f"/v1/jobs/{new_id}/cancel").status_code == 409
    assert admin.post(f"/v1/jobs/{new_id}/reschedule", json={"at": later}).status_code == 409

    update_rows = audit_rows(admin, task=name, action="task.update")
    ok = next(r for r in update_rows if r["outcome"] == "ok")
    assert ok["code_sha256_before"] == task["code_sha256"]
    assert ok["code_sha256_after"] == updated.json()["code_sha256"]
    assert ok["request_id"]

    assert admin.delete(f"/v1/tasks/{name}").status_code == 204
    assert admin.get(f"/v1/tasks/{name}").status_code == 404
    assert admin.delete(f"/v1/tasks/{name}").status_code == 404
    outcomes = [(r["action"], r["outcome"]) for r in audit_rows(admin, task=name)]
    outcomes += [
        (r["action"], r["outcome"])
        for action in ("job.cancel", "job.reschedule")
        for r in audit_rows(admin, action=action)
        if r["job"] == new_id
    ]
    for expected in [
        ("task.create", "ok"),
        ("task.create", "conflict"),
        ("task.update", "ok"),
        ("task.pause", "ok"),
        ("task.resume", "ok"),
        ("task.schedule", "ok"),
        ("job.reschedule", "ok"),
        ("job.cancel", "ok"),
        ("job.cancel", "conflict"),
        ("job.reschedule", "conflict"),
        ("task.delete", "ok"),
        ("task.delete", "not_found"),
    ]:
        assert expected in outcomes, expected


def test_the_api_serves_its_requests_over_one_open_prefect_client(
    admin: httpx.Client, platform: LocalPlatform
) -> None:
    """A Prefect client per request cost each state-changing request a new connection and a
    CSRF token (a call, and a row of Prefect's database); the API keeps one client open for its
    requests: five creates and five reads ask for one token at most (none if the client already
    holds one)."""

    async def tokens() -> set[str]:
        url = "postgresql+asyncpg://" + platform.settings.database_url.split("://", 1)[1]
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return set((await conn.execute(text("SELECT client FROM csrf_token"))).scalars())
        finally:
            await engine.dispose()

    before = asyncio.run(tokens())
    for _ in range(5):
        name = unique()
        assert admin.post("/v1/tasks", json={"name": name, "code": HELLO}).status_code == 201
        assert admin.get(f"/v1/tasks/{name}").status_code == 200
        assert admin.delete(f"/v1/tasks/{name}").status_code == 204
    assert len(asyncio.run(tokens()) - before) <= 1


def test_run_now_completes_and_its_job_logs_and_list_are_readable(admin: httpx.Client) -> None:
    name = unique()
    assert admin.post("/v1/tasks", json={"name": name, "code": HELLO}).status_code == 201
    ran = admin.post(f"/v1/tasks/{name}/run", json={"parameters": {"who": "Ada"}})
    assert ran.status_code == 201, ran.text
    job_id = ran.json()["job_id"]

    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = admin.get(f"/v1/jobs/{job_id}").json()
        return job if job["state"] in ("completed", "failed", "cancelled") else None

    job = wait_for(finished, timeout=120, what="the job to finish")
    assert job["state"] == "completed", job
    assert [s["state"] for s in job["timeline"]][-1] == "completed"
    lines = admin.get(f"/v1/jobs/{job_id}/logs").json()["items"]
    assert "hello Ada" in [line["message"] for line in lines]
    listed = admin.get("/v1/jobs", params={"task": name, "state": "completed"}).json()
    assert [j["id"] for j in listed["items"]] == [job_id]
    assert admin.get("/v1/jobs", params={"state": "sleeping"}).status_code == 422
    assert admin.get("/v1/jobs", params={"task": unique()}).status_code == 404
    assert admin.get("/v1/jobs/00000000-0000-0000-0000-000000000000").status_code == 404
    assert admin.get("/v1/jobs/not-a-job/logs").status_code == 404
    assert admin.post(f"/v1/tasks/{unique()}/run").status_code == 404
    admin.delete(f"/v1/tasks/{name}")


def test_tasks_are_paginated_with_an_opaque_cursor(admin: httpx.Client) -> None:
    prefix = unique("page")
    for i in range(3):
        assert (
            admin.post("/v1/tasks", json={"name": f"{prefix}-{i}", "code": HELLO}).status_code
            == 201
        )
    first = admin.get("/v1/tasks", params={"limit": 2, "search": prefix}).json()
    assert [t["name"] for t in first["items"]] == [f"{prefix}-0", f"{prefix}-1"]
    second = admin.get(
        "/v1/tasks", params={"limit": 2, "search": prefix, "cursor": first["next_cursor"]}
    ).json()
    assert [t["name"] for t in second["items"]] == [f"{prefix}-2"]
    assert second["next_cursor"] is None
    assert admin.get("/v1/tasks", params={"cursor": "garbage!"}).status_code == 422
    assert admin.get("/v1/tasks", params={"limit": 0}).status_code == 422
    # The largest page asks Prefect for one row more than its own page limit (found by fuzzing).
    assert admin.get("/v1/tasks", params={"limit": 200, "search": prefix}).status_code == 200
    assert admin.get("/v1/jobs", params={"limit": 200}).status_code == 200
    assert admin.get("/v1/tasks", params={"limit": 201}).status_code == 422
    # A full largest page and the one after it, over more rows than Prefect answers in one
    # call: 205 jobs of one task, added in one call, a month ahead (none runs).
    name, at = f"{prefix}-0", now() + dt.timedelta(days=30)
    jobs = [{"at": (at + dt.timedelta(seconds=i)).isoformat()} for i in range(205)]
    assert admin.post(f"/v1/tasks/{name}/jobs/bulk", json={"jobs": jobs}).status_code == 201
    first = admin.get("/v1/jobs", params={"task": name, "limit": 200}).json()
    assert len(first["items"]) == 200 and first["next_cursor"], len(first["items"])
    rest = admin.get(
        "/v1/jobs", params={"task": name, "limit": 200, "cursor": first["next_cursor"]}
    ).json()
    ids = [j["id"] for j in first["items"] + rest["items"]]
    assert len(ids) == len(set(ids)) == 205 and rest["next_cursor"] is None
    times = [j["scheduled_time"] for j in first["items"] + rest["items"]]
    assert times == sorted(times, reverse=True), "newest first, across the pages"
    for i in range(3):
        admin.delete(f"/v1/tasks/{prefix}-{i}")


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": "Bad Name", "code": HELLO}, ["body", "name"]),
        ({"name": "ok-name", "code": HELLO, "colour": "red"}, ["body", "colour"]),
        ({"name": "ok-name", "code": HELLO, "retries": "many"}, ["body", "retries"]),
        ({"name": "ok-name", "code": HELLO, "retries": 99}, ["body", "retries"]),
        ({"name": "ok-name"}, ["body", "code"]),
        ({"name": "ok-name", "code": "def main(:"}, ["body", "code"]),
        ({"name": "ok-name", "code": "x" * (256 * 1024 + 1)}, ["body", "code"]),
        ({"name": "ok-name", "code": HELLO, "cron": "* * * * * *"}, ["body", "cron"]),
        ({"name": "ok-name", "code": HELLO, "every": "0.1s"}, ["body", "every"]),
        ({"name": "ok-name", "code": HELLO, "every": 1e300}, ["body", "every"]),
        ({"name": "ok-name", "code": HELLO, "cron": "0 9 * * *", "every": "1m"}, ["body", "every"]),
        ({"name": "ok-name", "code": HELLO, "at": "2001-01-01T00:00:00Z"}, ["body", "at"]),
        ({"name": "ok-name", "code": HELLO, "at": "9999-01-01T00:00:00Z"}, ["body", "at"]),
        (
            {"name": "ok-name", "code": HELLO, "parameters": {"who": "a\u0000b"}},
            ["body", "parameters", "who"],
        ),
        (
            {"name": "ok-name", "code": HELLO, "parameters": {"nope": 1}},
            ["body", "parameters", "nope"],
        ),
        ({"name": "ok-name", "code": HELLO, "secrets": {"PATH": "x"}}, ["body", "secrets", "PATH"]),
        (
            {"name": "ok-name", "code": HELLO, "secrets": {"DB": "missing-block"}},
            ["body", "secrets", "DB"],
        ),
        ([1, 2, 3], ["body"]),
    ],
)
def test_bad_input_is_422_naming_the_field_and_changes_nothing(
    admin: httpx.Client, body: Any, loc: list[str]
) -> None:
    if isinstance(body, dict) and body.get("name") == "ok-name":
        body = {**body, "name": unique()}
    response = admin.post("/v1/tasks", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail[0]["loc"][: len(loc)] == loc, detail
    assert detail[0]["msg"] and detail[0]["type"]
    if isinstance(body, dict) and "name" in body and loc != ["body", "name"]:
        assert admin.get(f"/v1/tasks/{body['name']}").status_code == 404
        rows = audit_rows(admin, task=body["name"])
        assert [(r["action"], r["outcome"]) for r in rows] == [("task.create", "invalid")]


def test_malformed_json_and_bad_times_are_4xx_not_500(admin: httpx.Client) -> None:
    garbled = admin.post(
        "/v1/tasks", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert garbled.status_code == 422
    assert garbled.json()["detail"][0]["loc"][0] == "body"
    name = unique()
    admin.post("/v1/tasks", json={"name": name, "code": HELLO})
    past = admin.post(f"/v1/tasks/{name}/schedule", json={"at": "2001-01-01T00:00:00Z"})
    assert past.status_code == 422 and past.json()["detail"][0]["loc"] == ["body", "at"]
    extra = admin.post(f"/v1/tasks/{name}/schedule", json={"at": "2030-01-01T00:00:00Z", "x": 1})
    assert extra.status_code == 422
    assert admin.post(f"/v1/tasks/{name}/run", json={"parameters": {"bad": 1}}).status_code == 422
    assert admin.get("/v1/audit", params={"since": "yesterday"}).status_code == 422
    admin.delete(f"/v1/tasks/{name}")


# ---- bad input: refused before it is read, a clear answer, nothing changed ----------------------

MIB = 1024 * 1024


def raw_request(
    platform: LocalPlatform, head: str, body: bytes = b"", *, wait: float = 20
) -> tuple[int, bytes]:
    """Send a request's head, then ``body`` a piece at a time until the server answers, on a
    bare socket; the status and the whole answer. A server that answers before the
    body has all been sent stops the sending, which is the point of some tests."""
    host, port = platform.settings.host, platform.settings.api_port
    with socket.create_connection((host, port), timeout=wait) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
        for start in range(0, len(body), 64 * 1024):
            if select.select([sock], [], [], 0.05)[0]:
                break  # answered already
            try:
                sock.sendall(body[start : start + 64 * 1024])
            except OSError:
                break
        answer = b""
        with contextlib.suppress(OSError):  # a 413 closes the connection: read to its end
            while chunk := sock.recv(65536):
                answer += chunk
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, answer


def chunked(size: int, piece: int = 64 * 1024) -> bytes:
    """``size`` bytes of a JSON-ish body in chunked encoding, without the final empty chunk
    (the body never ends: only a server that stops reading can answer)."""
    data = b"x" * piece
    return b"".join(f"{piece:x}\r\n".encode() + data + b"\r\n" for _ in range(size // piece))


def test_a_body_over_the_limit_is_413_before_it_is_read_on_v1_and_on_sign_in(
    platform: LocalPlatform, admin: httpx.Client
) -> None:
    """Headers announce 50 MB and no byte of the body is sent: only a server that answers
    without reading the body can answer at all."""
    with client_with(platform, admin, "read") as reader:
        authorization = reader.headers["Authorization"]
    heads = {
        "anonymous /v1/tasks": "POST /v1/tasks HTTP/1.1\nHost: api\n",
        "read token /v1/tasks": f"POST /v1/tasks HTTP/1.1\nHost: api\nAuthorization: {authorization}\n",  # noqa: E501
        "sign-in": "POST /ui/session HTTP/1.1\nHost: api\nSec-Fetch-Site: same-origin\n",
    }
    for what, head in heads.items():
        status, answer = raw_request(
            platform, f"{head}Content-Type: application/json\nContent-Length: {50 * MIB}\n"
        )
        assert status == 413, (what, answer)
        assert b"at most 1048576 bytes" in answer, what


def test_a_chunked_body_is_refused_with_413_once_it_passes_the_limit(
    platform: LocalPlatform, admin: httpx.Client
) -> None:
    """1.5 MiB of a body that never ends: the answer comes once the server has read 1 MiB."""
    name = unique()
    with client_with(platform, admin, "write") as writer:
        authorization = writer.headers["Authorization"]
    common = "Content-Type: application/json\nTransfer-Encoding: chunked\n"
    status, answer = raw_request(
        platform,
        f"POST /v1/tasks/{name}/run HTTP/1.1\nHost: api\nAuthorization: {authorization}\n{common}",
        chunked(3 * MIB // 2),
    )
    assert status == 413, answer
    status, answer = raw_request(
        platform,
        f"POST /ui/session HTTP/1.1\nHost: api\nSec-Fetch-Site: same-origin\n{common}",
        chunked(3 * MIB // 2),
    )
    assert status == 413, answer
    rows = audit_rows(admin, task=name, action="task.run")
    assert [(r["outcome"], r["actor_name"][:10]) for r in rows] == [("too_large", "test-write")]


def test_bodies_under_the_limit_are_read_whole_the_largest_task_included(
    admin: httpx.Client,
) -> None:
    name = unique()
    code = (HELLO + "#" * (256 * 1024))[: 256 * 1024]  # code as large as a task may have
    created = admin.post("/v1/tasks", json={"name": name, "code": code})
    assert created.status_code == 201, created.text
    admin.delete(f"/v1/tasks/{name}")
    # Just under 1 MiB of JSON is read whole and validated (422 for the description's length).
    padded = admin.post(
        "/v1/tasks", json={"name": unique(), "code": HELLO, "description": "x" * (MIB - 300)}
    )
    assert padded.status_code == 422, padded.text
    assert padded.json()["detail"][0]["loc"] == ["body", "description"]


def test_a_cross_site_sign_in_is_refused_before_its_body_is_parsed(
    platform: LocalPlatform,
) -> None:
    with from_own_address(platform.service_api_url) as client:
        forged = client.post(
            "/ui/session",
            content=b"{not a form",
            headers={"content-type": "application/json", "Origin": "http://evil.invalid"},
        )
        assert forged.status_code == 403, forged.text
        fetched = client.post(
            "/ui/session", content=b"[]", headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert fetched.status_code == 403
        own = client.post(
            "/ui/session", content=b"{not a form", headers={"Sec-Fetch-Site": "same-origin"}
        )
        assert own.status_code == 422 and own.json()["detail"][0]["loc"][0] == "body"
        empty = client.post("/ui/session", json={}, headers={"Sec-Fetch-Site": "same-origin"})
        assert empty.status_code == 422
        assert empty.json()["detail"][0]["loc"] == ["body", "token"]


@pytest.mark.parametrize(
    ("field", "value", "window"),
    [
        ("cron", "0 0 31 2 *", {}),
        ("cron", "0 0 30 2 *", {}),
        ("rrule", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=31", {}),
        ("cron", "0 0 29 2 *", {"start": "2029-03-01T00:00:00Z", "end": "2031-12-31T00:00:00Z"}),
    ],
)
def test_a_schedule_that_never_fires_is_422_at_create_update_and_preview_and_nothing_changes(
    admin: httpx.Client, field: str, value: str, window: dict[str, str]
) -> None:
    preview = admin.get("/v1/schedules/preview", params={field: value, **window})
    assert preview.status_code == 422, preview.text
    assert preview.json()["detail"][0]["loc"] == ["query", field]

    name = unique()
    created = admin.post("/v1/tasks", json={"name": name, "code": HELLO, field: value, **window})
    assert created.status_code == 422, created.text
    assert created.json()["detail"][0]["loc"] == ["body", field]
    assert admin.get(f"/v1/tasks/{name}").status_code == 404
    assert asyncio.run(stored_in_prefect(name)) == ([], [])
    assert [r["outcome"] for r in audit_rows(admin, task=name)] == ["invalid"]

    assert (
        admin.post("/v1/tasks", json={"name": name, "code": HELLO, "every": "1h"}).status_code
        == 201
    )
    updated = admin.patch(f"/v1/tasks/{name}", json={field: value, **window})
    assert updated.status_code == 422, updated.text
    assert updated.json()["detail"][0]["loc"] == ["body", field]
    task = admin.get(f"/v1/tasks/{name}").json()
    assert task["version"] == 1 and task["schedule"].startswith("every")
    assert asyncio.run(stored_in_prefect(name)) == ([name], [f"{name}-v1"])
    admin.delete(f"/v1/tasks/{name}")


def test_anonymous_refusals_are_aggregated_so_they_cannot_flood_the_audit_log(
    platform: LocalPlatform, admin: httpx.Client
) -> None:
    """50 refusals of one caller: the first is written, the other 49 become one summary row
    once the window (10 s on the test platforms) has closed."""
    since = now().isoformat()
    offered = unique("req")
    with from_own_address(platform.service_api_url) as client:
        address = ""
        for _ in range(50):
            refused = client.post(
                "/v1/tasks", json={"name": "x", "code": HELLO}, headers={"X-Request-ID": offered}
            )
            assert refused.status_code == 401
            assert refused.headers["X-Request-ID"] != offered

    def mine() -> list[dict[str, Any]]:
        rows = audit_rows(admin, actor="anonymous", since=since, limit="200")
        nonlocal address
        if not address:  # the address the API saw, from the first row
            address = next(r["detail"].split(":")[0] for r in rows if r["action"] == "task.create")
        return [r for r in rows if r["detail"].startswith(address + ":")]

    rows = mine()
    assert [(r["action"], r["outcome"]) for r in rows] == [("task.create", "unauthorized")]
    summary = wait_for(
        lambda: [r for r in mine() if r["action"] == "refusals.summary"],
        timeout=120,
        interval=3,
        what="the summary row of the closed window",
    )
    assert [(r["outcome"], r["actor_kind"]) for r in summary] == [("unauthorized", "anonymous")]
    assert "49 more unauthorized refusals" in summary[0]["detail"]
    assert len(mine()) == 2
    assert not any(r["request_id"] == offered for r in mine())


def test_pages_and_api_answers_carry_the_security_headers(
    platform: LocalPlatform, admin: httpx.Client
) -> None:
    base = platform.service_api_url
    for path in ("/ui/signin", "/ui/tasks", "/ui/static/app.js"):
        headers = httpx.get(f"{base}{path}").headers
        policy = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy, path
        assert "unsafe-inline" not in policy
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
    for response in (admin.get("/v1/tasks"), httpx.get(f"{base}/v1/tasks")):
        assert response.headers["content-type"] == "application/json"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


# ---- secrets ---------------------------------------------------------------------------------


def test_secrets_reach_the_code_and_never_an_api_response_log_or_audit_row(
    platform: LocalPlatform, admin: httpx.Client
) -> None:
    from prefect.blocks.system import Secret

    value = f"s3cr3t-{unique()}"
    block = unique("pw")
    Secret(value=value).save(block)
    name = unique()
    code = (
        "import os\n"
        "def main():\n"
        "    secret = os.environ['DB_PASSWORD']\n"
        "    print('the password is', secret)\n"
        "    return len(secret)\n"
    )
    created = admin.post(
        "/v1/tasks", json={"name": name, "code": code, "secrets": {"DB_PASSWORD": block}}
    )
    assert created.status_code == 201, created.text
    assert created.json()["spec"]["secrets"] == {"DB_PASSWORD": block}
    job_id = admin.post(f"/v1/tasks/{name}/run").json()["job_id"]

    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = admin.get(f"/v1/jobs/{job_id}").json()
        return job if job["state"] in ("completed", "failed", "cancelled") else None

    job = wait_for(finished, timeout=120, what="the job to finish")
    assert job["state"] == "completed", job
    logs = admin.get(f"/v1/jobs/{job_id}/logs").json()["items"]
    messages = [line["message"] for line in logs]
    assert "the password is ***" in messages, messages
    assert f"Result: {len(value)}" in messages, "the code saw the real value"
    seen = " ".join(
        [
            admin.get(f"/v1/tasks/{name}").text,
            admin.get(f"/v1/jobs/{job_id}").text,
            admin.get(f"/v1/jobs/{job_id}/logs").text,
            admin.get("/v1/jobs", params={"task": name}).text,
            admin.get("/v1/audit", params={"task": name}).text,
        ]
    )
    assert value not in seen
    assert value not in (platform.log_dir / "taskscheduler-api.log").read_text()
    admin.delete(f"/v1/tasks/{name}")


# ---- pools and secrets granted to tokens ------------------------------------------------------


def created_nothing(admin: httpx.Client, name: str, action: str = "task.create") -> None:
    """``name`` does not exist, and its one audit row says the call was forbidden."""
    assert admin.get(f"/v1/tasks/{name}").status_code == 404
    rows = audit_rows(admin, task=name)
    assert [(r["action"], r["outcome"]) for r in rows] == [(action, "forbidden")], rows


def test_a_new_write_token_may_use_only_the_sandbox_and_docker_pools(
    platform: LocalPlatform, admin: httpx.Client, docker_pool: str
) -> None:
    made = new_token(admin, "write")
    untrusted = ["docker", "sandbox"]
    assert (made["pools"], made["secrets"]) == (untrusted, [])
    listed = {t["id"]: t for t in admin.get("/v1/tokens").json()}
    assert (listed[made["id"]]["pools"], listed[made["id"]]["secrets"]) == (untrusted, [])
    bootstrap = next(t for t in listed.values() if t["name"] == "admin (TASKS_ADMIN_TOKEN)")
    assert (bootstrap["pools"], bootstrap["secrets"]) == (None, None), "admin: every pool"
    with bearer_client(platform, made["token"]) as writer:
        # No pool named: a token's task goes to the sandbox lane (an admin's to `process`).
        unnamed = unique()
        created = writer.post("/v1/tasks", json={"name": unnamed, "code": HELLO})
        assert created.status_code == 201, created.text
        assert created.json()["pool"] == "sandbox"
        admin.delete(f"/v1/tasks/{unnamed}")
        for pool in ("process", "fast"):
            name = unique()
            body = {"name": name, "code": HELLO, "pool": pool}
            assert writer.post("/v1/tasks", json=body).status_code == 403
            created_nothing(admin, name)

        name = unique()
        body = {"name": name, "code": HELLO, "pool": docker_pool}
        created = writer.post("/v1/tasks", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["pool"] == docker_pool
        # Its own task may not be moved to a pool the token lacks, by name or by default.
        for move in ({"pool": "process"}, {"pool": "fast"}, {"pool": None}):
            moved = writer.patch(f"/v1/tasks/{name}", json=move)
            assert moved.status_code == 403, (move, moved.text)
        task = admin.get(f"/v1/tasks/{name}").json()
        assert (task["pool"], task["version"]) == (docker_pool, 1)
        changed = writer.patch(f"/v1/tasks/{name}", json={"retries": 1})
        assert changed.status_code == 200 and changed.json()["version"] == 2
        outcomes = [r["outcome"] for r in audit_rows(admin, task=name, action="task.update")]
        assert sorted(outcomes) == ["forbidden"] * 3 + ["ok"]
    admin.delete(f"/v1/tasks/{name}")


def test_a_write_token_cannot_change_or_run_a_task_in_a_pool_it_lacks(
    platform: LocalPlatform, admin: httpx.Client
) -> None:
    name = unique()
    assert admin.post("/v1/tasks", json={"name": name, "code": HELLO}).status_code == 201
    at = (now() + dt.timedelta(hours=2)).isoformat()
    job_id = admin.post(f"/v1/tasks/{name}/schedule", json={"at": at}).json()["job_id"]
    later = (now() + dt.timedelta(hours=3)).isoformat()
    with client_with(platform, admin, "write") as writer:
        assert writer.get(f"/v1/tasks/{name}").status_code == 200, "reading is not a pool's"
        calls = [
            ("task.update", writer.patch(f"/v1/tasks/{name}", json={"pool": "docker"})),
            ("task.run", writer.post(f"/v1/tasks/{name}/run")),
            ("task.schedule", writer.post(f"/v1/tasks/{name}/schedule", json={"at": later})),
            ("job.reschedule", writer.post(f"/v1/jobs/{job_id}/reschedule", json={"at": later})),
        ]
    for action, response in calls:
        assert response.status_code == 403, (action, response.text)
        assert "runs in work pool 'process'" in response.json()["detail"], action
    jobs = admin.get("/v1/jobs", params={"task": name}).json()["items"]
    assert [(j["id"], j["state"]) for j in jobs] == [(job_id, "pending")], "nothing ran or moved"
    task = admin.get(f"/v1/tasks/{name}").json()
    assert (task["pool"], task["version"]) == ("process", 1)
    refused = {
        (r["action"], r["outcome"])
        for action in ("task.update", "task.run", "task.schedule", "job.reschedule")
        for r in audit_rows(admin, action=action)
        if r["task"] == name or r["job"] == job_id
    }
    assert refused >= {
        ("task.update", "forbidden"),
        ("task.run", "forbidden"),
        ("task.schedule", "forbidden"),
        ("job.reschedule", "forbidden"),
    }
    admin.delete(f"/v1/tasks/{name}")


def test_an_admin_grants_pools_at_creation_or_later_and_they_apply_at_the_next_call(
    platform: LocalPlatform, admin: httpx.Client
) -> None:
    first = unique()
    with client_with(platform, admin, "write", pools=["process"]) as granted:
        assert granted.post("/v1/tasks", json={"name": first, "code": HELLO}).status_code == 201
        at = (now() + dt.timedelta(hours=2)).isoformat()
        assert granted.post(f"/v1/tasks/{first}/schedule", json={"at": at}).status_code == 201
    made = new_token(admin, "write")
    second = unique()
    with bearer_client(platform, made["token"]) as writer:
        body = {"name": second, "code": HELLO, "pool": "process"}
        assert writer.post("/v1/tasks", json=body).status_code == 403
        own = writer.patch(f"/v1/tokens/{made['id']}", json={"pools": ["process"]})
        assert own.status_code == 403, "only an admin grants"
        changed = admin.patch(f"/v1/tokens/{made['id']}", json={"pools": ["docker", "process"]})
        assert changed.status_code == 200, changed.text
        assert (changed.json()["pools"], changed.json()["secrets"]) == (["docker", "process"], [])
        assert writer.post("/v1/tasks", json=body).status_code == 201
    grant_rows = audit_rows(admin, action="token.grant")
    ok = next(r for r in grant_rows if made["id"] in (r["detail"] or ""))
    assert ok["outcome"] == "ok" and "process" in ok["detail"]

    bootstrap = next(
        t for t in admin.get("/v1/tokens").json() if t["name"] == "admin (TASKS_ADMIN_TOKEN)"
    )
    assert admin.patch(f"/v1/tokens/{bootstrap['id']}", json={"pools": []}).status_code == 422
    missing = "00000000-0000-0000-0000-000000000000"
    assert admin.patch(f"/v1/tokens/{missing}", json={"pools": []}).status_code == 404
    assert admin.patch(f"/v1/tokens/{made['id']}", json={}).status_code == 422
    an_admin = {"name": unique("adm"), "scope": "admin", "pools": ["docker"]}
    assert admin.post("/v1/tokens", json=an_admin).status_code == 422
    outcomes = {r["outcome"] for r in audit_rows(admin, action="token.grant")}
    assert outcomes >= {"ok", "invalid", "not_found"}
    for name in (first, second):
        admin.delete(f"/v1/tasks/{name}")


def test_a_write_token_may_name_only_the_secret_blocks_it_was_granted(
    platform: LocalPlatform, admin: httpx.Client
) -> None:
    from prefect.blocks.system import Secret

    granted, other = unique("granted"), unique("other")
    for block in (granted, other):
        Secret(value=f"value-of-{block}").save(block)
    name, refused_name = unique(), unique()
    with client_with(platform, admin, "write", pools=["process"], secrets=[granted]) as writer:
        body = {"name": refused_name, "code": HELLO, "secrets": {"KEY": other}}
        refused = writer.post("/v1/tasks", json=body)
        assert refused.status_code == 403, refused.text
        assert other in refused.json()["detail"] and granted not in refused.json()["detail"]
        created_nothing(admin, refused_name)
        body = {"name": name, "code": HELLO, "secrets": {"KEY": granted}}
        assert writer.post("/v1/tasks", json=body).status_code == 201
        adding = {"secrets": {"KEY": granted, "OTHER": other}}
        assert writer.patch(f"/v1/tasks/{name}", json=adding).status_code == 403
        assert admin.get(f"/v1/tasks/{name}").json()["spec"]["secrets"] == {"KEY": granted}
        # An admin adds the other block: the token may not keep it in a change of its own...
        assert admin.patch(f"/v1/tasks/{name}", json=adding).status_code == 200
        assert writer.patch(f"/v1/tasks/{name}", json={"retries": 1}).status_code == 403
        # ...but may take it out, keeping only what it was granted.
        dropped = writer.patch(f"/v1/tasks/{name}", json={"secrets": {"KEY": granted}})
        assert dropped.status_code == 200, dropped.text
        assert dropped.json()["spec"]["secrets"] == {"KEY": granted}
    admin.delete(f"/v1/tasks/{name}")


def test_cli_creates_tokens_with_grants_and_changes_them(platform: LocalPlatform) -> None:
    made = cli_json(
        "token", "create", "--scope", "write", "--name", unique("cli"),
        "--pool", "process", "--pool", "fast", "--secret", "a-block",
    )  # fmt: skip
    assert (made["pools"], made["secrets"]) == (["fast", "process"], ["a-block"])
    changed = cli_json("token", "grant", made["id"], "--pool", "docker", "--no-secrets")
    assert (changed["pools"], changed["secrets"]) == (["docker"], [])
    with bearer_client(platform, made["token"]) as writer:
        body = {"name": unique(), "code": HELLO, "pool": "process"}
        assert writer.post("/v1/tasks", json=body).status_code == 403, "the grant took effect"
    nothing = cli("token", "grant", made["id"], check=False)
    assert nothing.returncode == 1
    assert nothing.stderr.strip().splitlines() == [
        "error: token: nothing to change: give pools or secrets"
    ]


# ---- audit log -------------------------------------------------------------------------------


def test_audit_rows_cannot_be_updated_or_deleted(platform: LocalPlatform) -> None:
    async def tamper(statement: str) -> str:
        engine = create_async_engine(platform.settings.asyncpg_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(statement))
        except Exception as exc:
            return str(exc)
        finally:
            await engine.dispose()
        return "allowed"

    for statement in (
        "UPDATE taskscheduler.audit_log SET outcome = 'ok'",
        "DELETE FROM taskscheduler.audit_log",
        "TRUNCATE taskscheduler.audit_log",
    ):
        assert "append-only" in asyncio.run(tamper(statement)), statement


def test_audit_is_filtered_and_paginated(admin: httpx.Client) -> None:
    name = unique()
    for _ in range(3):
        admin.post("/v1/tasks", json={"name": name})  # invalid: no code
    page = admin.get("/v1/audit", params={"task": name, "limit": 2}).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = admin.get(
        "/v1/audit", params={"task": name, "limit": 2, "cursor": page["next_cursor"]}
    ).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    since = (now() - dt.timedelta(minutes=5)).isoformat()
    assert admin.get("/v1/audit", params={"since": since, "action": "task.create"}).json()["items"]


def test_cli_speaks_the_api_as_its_token_and_the_audit_names_that_token(
    platform: LocalPlatform, admin: httpx.Client
) -> None:
    """`tasks` is a client of the REST API: tokens and the audit through it too, each action
    recorded under the token the CLI holds, and a read token changes nothing through it."""
    made = cli_json("token", "create", "--scope", "write", "--name", unique("cli"))
    assert made["scope"] == "write" and made["token"].startswith("tsk_")
    headers = {"Authorization": f"Bearer {made['token']}"}
    base = platform.service_api_url
    assert httpx.get(f"{base}/v1/tasks", headers=headers).status_code == 200
    listed = cli_json("token", "list")
    assert made["token"] not in json.dumps(listed)
    assert any(t["id"] == made["id"] for t in listed)

    # As the write token: its actions carry its id and name.
    name = unique()
    cli("create", name, "--code", HELLO, "--pool", "docker", token=made["token"])
    cli("delete", name, token=made["token"])
    rows = cli_json("audit", "--task", name)
    assert [(r["action"], r["outcome"]) for r in rows] == [
        ("task.delete", "ok"),
        ("task.create", "ok"),
    ]
    assert {(r["actor_kind"], r["actor_id"], r["actor_name"]) for r in rows} == {
        ("token", made["id"], made["name"])
    }

    # A read token reads, and every change is refused with one line and recorded as refused.
    reader = cli_json("token", "create", "--scope", "read", "--name", unique("cli-read"))
    assert isinstance(cli_json("list", "--limit", "5", token=reader["token"]), list)
    kept = unique()
    for args in (
        ("create", kept, "--code", HELLO),
        ("token", "create", "--scope", "admin", "--name", unique("escalate")),
        ("token", "revoke", made["id"]),
    ):
        refused = cli(*args, check=False, token=reader["token"])
        assert refused.returncode == 1, args
        assert refused.stderr.strip().splitlines() == [refused.stderr.strip()], refused.stderr
        assert refused.stderr.startswith("error: "), refused.stderr
        assert "Traceback" not in refused.stderr
    assert cli("show", kept, check=False).returncode == 1, "nothing was created"
    denied = cli_json("audit", "--actor", reader["id"], "--action", "task.create")
    assert [r["outcome"] for r in denied] == ["forbidden"]

    cli("token", "revoke", made["id"])
    assert httpx.get(f"{base}/v1/tasks", headers=headers).status_code == 401
    assert cli("token", "revoke", "nope", check=False).returncode == 1
    # The two revocations just made, newest first, under the admin token the CLI holds.
    revokes = cli_json("audit", "--action", "token.revoke", "--limit", "2")
    assert [r["outcome"] for r in revokes] == ["not_found", "ok"]
    assert {r["actor_kind"] for r in revokes} == {"token"}
    assert len({r["actor_id"] for r in revokes}) == 1


# ---- property-based fuzzing of the OpenAPI description ---------------------------------------


# Per operation: 12 take about three minutes for all of them on two cores.
FUZZ_EXAMPLES = int(os.environ.get("TASKS_FUZZ_EXAMPLES", "12"))
# A new seed each run finds more over time; printed, and TASKS_FUZZ_SEED replays a failure.
FUZZ_SEED = int(os.environ.get("TASKS_FUZZ_SEED") or secrets.randbits(32))


def test_fuzzed_calls_never_get_a_5xx_nor_an_answer_outside_the_spec(
    platform: LocalPlatform, admin: httpx.Client
) -> None:
    """Generated requests for every operation of the served OpenAPI description (schemathesis):
    no server error, and every answer has a documented status code and matches its schema."""
    schema = schemathesis.openapi.from_url(f"{platform.service_api_url}/openapi.json")
    headers = {"Authorization": admin.headers["Authorization"]}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @seed(FUZZ_SEED)
        @given(case=operation.as_strategy())
        @settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: Any) -> None:
            case.call_and_validate(
                base_url=platform.service_api_url,
                headers=headers,
                checks=[
                    checks.not_a_server_error,
                    checks.response_schema_conformance,
                    checks.status_code_conformance,
                ],
                timeout=60,
            )

        try:
            call()
        except Exception as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:2000])
    print(f"fuzzed with TASKS_FUZZ_SEED={FUZZ_SEED}, {FUZZ_EXAMPLES} examples an operation")
    assert not failures, f"TASKS_FUZZ_SEED={FUZZ_SEED}\n\n" + "\n\n".join(failures)


def test_many_jobs_are_added_in_one_call_run_on_time_and_a_repeat_adds_none(
    platform: LocalPlatform, admin: httpx.Client, tmp_path: Any
) -> None:
    """``POST /v1/tasks/{name}/jobs/bulk``: 40 jobs with their own times and arguments, in one
    transaction of the Prefect server; the fast lane runs each with its own arguments; the same
    call again (same key) answers the same ids and adds nothing; a token that may not use the
    task's pool is refused and audited; the CLI adds more from a JSON-lines file."""
    name = unique("bulk")
    code = "def main(n=0):\n    return n * 2\n"
    created = admin.post("/v1/tasks", json={"name": name, "code": code, "pool": "fast"})
    assert created.status_code == 201, created.text
    first = now() + dt.timedelta(seconds=8)
    body = {
        "key": "bulk-test-1",
        "jobs": [
            {"at": (first + dt.timedelta(milliseconds=50 * n)).isoformat(), "parameters": {"n": n}}
            for n in range(40)
        ],
    }
    added = admin.post(f"/v1/tasks/{name}/jobs/bulk", json=body)
    assert added.status_code == 201, added.text
    answer = added.json()
    assert answer["task"] == name and answer["created"] == 40
    assert len(set(answer["job_ids"])) == 40
    again = admin.post(f"/v1/tasks/{name}/jobs/bulk", json=body)
    assert again.status_code == 201 and again.json() == {**answer, "created": 0}

    def ended() -> list[dict[str, Any]] | None:
        jobs = [admin.get(f"/v1/jobs/{job_id}").json() for job_id in answer["job_ids"]]
        return jobs if all(j["state"] == "completed" for j in jobs) else None

    jobs = wait_for(ended, timeout=120, interval=1.0, what="the 40 jobs to complete")
    for n, job in enumerate(jobs):
        assert job["parameters"]["n"] == n, job["parameters"]
        scheduled = dt.datetime.fromisoformat(job["scheduled_time"])
        assert scheduled == first + dt.timedelta(milliseconds=50 * n)
        assert dt.datetime.fromisoformat(job["start_time"]) >= scheduled, "never before its time"
    logs = admin.get(f"/v1/jobs/{answer['job_ids'][7]}/logs").json()["items"]
    assert "Result: 14" in [line["message"] for line in logs]
    [row] = audit_rows(admin, task=name, action="task.schedule")[:1]
    assert row["outcome"] == "ok" and "40 jobs" in row["detail"]

    with client_with(platform, admin, "write", pools=["docker"]) as outsider:
        refused = outsider.post(f"/v1/tasks/{name}/jobs/bulk", json=body)
    assert refused.status_code == 403, refused.text
    assert "runs in work pool 'fast'" in refused.json()["detail"]
    past = {"jobs": [{"at": (now() - dt.timedelta(hours=1)).isoformat()}]}
    invalid = admin.post(f"/v1/tasks/{name}/jobs/bulk", json=past)
    assert invalid.status_code == 422 and "in the past" in invalid.text

    lines = tmp_path / "jobs.jsonl"
    later = now() + dt.timedelta(days=1)
    lines.write_text(
        "\n".join(
            json.dumps(
                {"at": (later + dt.timedelta(minutes=n)).isoformat(), "parameters": {"n": n}}
            )
            for n in range(3)
        )
    )
    made = cli_json("add-jobs", name, str(lines), "--key", "cli-1")
    assert made["created"] == 3 and len(made["job_ids"]) == 3
    assert cli_json("add-jobs", name, str(lines), "--key", "cli-1") == {**made, "created": 0}
    bad = cli("add-jobs", name, "--at", "not a time", check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("error:"), bad.stderr
    admin.delete(f"/v1/tasks/{name}")


def test_many_tasks_are_created_in_one_call_all_of_them_or_none(
    platform: LocalPlatform, admin: httpx.Client
) -> None:
    """``POST /v1/tasks/bulk``: three tasks of different schedules in one transaction of the
    Prefect server, each then read like any other, with its first job made and its own audit
    row; a taken name, a bad field, a name given twice, a missing pool or a pool the token may
    not use refuses the whole call and leaves nothing behind, not even a code version."""
    names = [unique("many") for _ in range(3)]
    soon = (now() + dt.timedelta(minutes=30)).replace(microsecond=0)
    bodies = [
        {"name": names[0], "code": HELLO, "cron": "0 9 * * *", "timezone": "Asia/Kolkata"},
        {"name": names[1], "code": HELLO, "every": "10m", "retries": 2, "tags": ["bulk"]},
        {"name": names[2], "code": HELLO, "at": soon.isoformat(), "parameters": {"who": "all"}},
    ]
    made = admin.post("/v1/tasks/bulk", json={"tasks": bodies})
    assert made.status_code == 201, made.text
    items = made.json()["items"]
    assert [t["name"] for t in items] == names
    for item in items:
        one = admin.get(f"/v1/tasks/{item['name']}").json()
        assert (one["id"], one["version"], one["code_sha256"]) == (
            item["id"], 1, item["code_sha256"]
        )  # fmt: skip
        assert item["next_runs"] and item["next_runs"][0] == one["next_runs"][0], (item, one)
        rows = audit_rows(admin, task=item["name"], action="task.create")
        assert [(r["outcome"], r["code_sha256_after"]) for r in rows] == [
            ("ok", item["code_sha256"])
        ]
    assert items[0]["timezone"] == "Asia/Kolkata" and items[1]["spec"]["retries"] == 2
    assert dt.datetime.fromisoformat(items[2]["next_runs"][0]) == soon
    [job] = admin.get("/v1/jobs", params={"task": names[2]}).json()["items"]
    assert dt.datetime.fromisoformat(job["scheduled_time"]) == soon, "made in the same call"

    fresh = [unique("many") for _ in range(2)]

    def batch(*extra: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"name": fresh[0], "code": HELLO}, *extra, {"name": fresh[1], "code": HELLO}]

    taken = admin.post("/v1/tasks/bulk", json={"tasks": batch({"name": names[1], "code": HELLO})})
    assert taken.status_code == 409 and names[1] in taken.json()["detail"], taken.text
    bad = admin.post("/v1/tasks/bulk", json={"tasks": batch({"name": unique(), "code": "def ("})})
    assert bad.status_code == 422, bad.text
    assert bad.json()["detail"][0]["loc"] == ["body", "tasks", "1", "code"], bad.text
    twice = admin.post("/v1/tasks/bulk", json={"tasks": batch({"name": fresh[0], "code": HELLO})})
    assert twice.status_code == 422 and "named more than once" in twice.text, twice.text
    no_pool = {"name": unique(), "code": HELLO, "pool": "no-such-pool"}
    missing = admin.post("/v1/tasks/bulk", json={"tasks": batch(no_pool)})
    assert missing.status_code == 422 and "no-such-pool" in missing.text, missing.text
    with client_with(platform, admin, "write", pools=["docker"]) as outsider:
        refused = outsider.post(
            "/v1/tasks/bulk", json={"tasks": [{**t, "pool": "fast"} for t in batch()]}
        )
    assert refused.status_code == 403, refused.text
    assert admin.post("/v1/tasks/bulk", json={"tasks": []}).status_code == 422
    for name in fresh:
        assert admin.get(f"/v1/tasks/{name}").status_code == 404
        assert asyncio.run(stored_in_prefect(name)) == ([], []), "no code version left behind"
        outcomes = sorted(r["outcome"] for r in audit_rows(admin, task=name))
        assert outcomes == ["conflict", "forbidden", "invalid", "invalid", "invalid"], outcomes
