"""Untrusted code stays contained: an adversarial job on each lane, every attempt refused.

The job is created through the REST API with a ``write`` token, as an attacker would. It
tries to reach the platform around the job gateway (PostgreSQL, Redis, the Prefect API and
the task API on loopback), to read the platform's credentials file, to find the platform's
secrets in its environment, and — through whatever Prefect API it is given — to read another
task's code block and an undeclared secret, to set another run's state, to list deployments,
to list flow runs and to create an automation. It reports each outcome as one JSON line; the
test decides, with the real secrets' hashes, what counts as refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from taskscheduler import JobState, TaskScheduler
from taskscheduler.platform import LocalPlatform
from tests.integration.helpers import scheduler, unique

pytestmark = pytest.mark.slow

ATTACKER = r"""
import hashlib, json, os, socket

def main(ports, credentials_file, other_code, other_secret, other_run):
    results = {}

    def attempt(name, action):
        try:
            results[name] = "allowed: " + str(action())[:300]
        except Exception as exc:  # the point: what fails is refused
            results[name] = "refused: " + type(exc).__name__ + ": " + str(exc)[:300]

    for service, port in sorted(ports.items()):
        attempt(
            "connect " + service,
            lambda port=port: socket.create_connection(("127.0.0.1", port), timeout=3).close()
            or "connected",
        )
    attempt("read the credentials file", lambda: open(credentials_file).read()[:4] + "...")

    def parts(value):
        import re
        return {value, *re.split(r"[:@/= ]", value)}

    env_hashes = {
        name: sorted(hashlib.sha256(p.encode()).hexdigest() for p in parts(value) if p)
        for name, value in os.environ.items()
    }

    import httpx

    api = os.environ.get("PREFECT_API_URL") or "http://127.0.0.1:%d/api" % ports["prefect"]
    user, _, password = (os.environ.get("PREFECT_API_AUTH_STRING") or "").partition(":")
    client = httpx.Client(base_url=api + "/", auth=(user, password) if user else None, timeout=10)

    def call(method, path, body=None):
        response = client.request(method, path, json=body)
        if response.status_code in (401, 403):
            raise PermissionError(f"{response.status_code}: {response.text[:200]}")
        return f"{response.status_code}: {response.text[:200]}"

    documents = "block_types/slug/{}/block_documents/name/{}?include_secrets=true"
    attempt("load another task's code block",
            lambda: call("GET", documents.format("task-code", other_code)))
    attempt("load an undeclared secret",
            lambda: call("GET", documents.format("secret", other_secret)))
    attempt("set another run's state",
            lambda: call("POST", f"flow_runs/{other_run}/set_state",
                         {"state": {"type": "CANCELLED", "message": "attacked"}, "force": True}))
    attempt("list deployments", lambda: call("POST", "deployments/filter", {}))
    attempt("list flow runs", lambda: call("POST", "flow_runs/filter", {}))
    attempt("read variables", lambda: call("POST", "variables/filter", {}))
    attempt("create an automation", lambda: call("POST", "automations/", {
        "name": "attacker", "trigger": {"type": "event", "expect": ["x"], "posture": "Reactive",
        "threshold": 1, "within": 0}, "actions": [{"type": "do-nothing"}]}))
    print("ATTACK " + json.dumps({"results": results, "env": env_hashes}))
    return "done"
"""


@pytest.fixture(scope="module")
def ts(platform: LocalPlatform) -> Iterator[TaskScheduler]:
    with scheduler() as client:
        yield client


@pytest.fixture(scope="module")
def victim(ts: TaskScheduler) -> dict[str, str]:
    """Another task, with code, a secret and a waiting run: what the attacker goes after."""
    from prefect.blocks.system import Secret

    secret = unique("victim-secret")
    Secret(value="the victim's password").save(secret)
    name = unique("victim")
    ts.create({"name": name, "code": "def main():\n    return 1\n", "secrets": {"PW": secret}})
    waiting = ts.schedule(name, dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    return {"code": f"{name}-v1", "secret": secret, "run": waiting.id}


@pytest.fixture(scope="module")
def write_client(platform: LocalPlatform, admin: httpx.Client) -> Iterator[httpx.Client]:
    """A client of the REST API holding a ``write`` token granted the four lanes."""
    answer = admin.post(
        "/v1/tokens",
        json={
            "name": unique("attacker"),
            "scope": "write",
            "pools": ["docker", "process", "fast", "sandbox"],
        },
    )
    answer.raise_for_status()
    with httpx.Client(
        base_url=platform.service_api_url,
        headers={"Authorization": f"Bearer {answer.json()['token']}"},
        timeout=60,
    ) as client:
        yield client


def platform_secrets(platform: LocalPlatform) -> dict[str, str]:
    """Every secret of the platform a job must never hold, by what it is."""
    creds = platform.credentials
    auth = creds.prefect_auth_string.get_secret_value()
    found = {
        "Prefect auth string": auth,
        "Prefect auth password": auth.partition(":")[2],
        "admin token": creds.admin_token.get_secret_value(),
        "gate key": creds.gate_key.get_secret_value(),
        "encryption key": creds.encryption_key.get_secret_value(),
        "database URL": platform.settings.database_url,
        "Prefect's database URL": platform.server_env()["PREFECT_SERVER_DATABASE_CONNECTION_URL"],
    }
    found.update(platform.database_passwords())
    return found


def attack(
    ts: TaskScheduler,
    client: httpx.Client,
    platform: LocalPlatform,
    victim: dict[str, str],
    pool: str,
) -> tuple[dict[str, str], list[str]]:
    """Run the attacker on ``pool``; its attempts' outcomes and the platform secrets it held."""
    name = unique(f"attacker-{pool}")
    created = client.post(
        "/v1/tasks",
        json={
            "name": name,
            "code": ATTACKER,
            "pool": pool,
            "parameters": {
                "ports": {
                    "postgres": 5432,
                    "redis": 6379,
                    "prefect": platform.settings.prefect_port,
                    "task-api": platform.settings.api_port,
                },
                "credentials_file": str(platform.settings.state_dir / "credentials.json"),
                "other_code": victim["code"],
                "other_secret": victim["secret"],
                "other_run": victim["run"],
            },
        },
    )
    assert created.status_code == 201, created.text
    ts.created.append(name)  # type: ignore[attr-defined]
    started = client.post(f"/v1/tasks/{name}/run")
    assert started.status_code == 201, started.text
    job = ts.wait(started.json()["job_id"], timeout=600)
    assert job.state is JobState.COMPLETED, (job.state_name, job.detail)
    lines = [line.message for line in ts.logs(job.id) if line.message.startswith("ATTACK ")]
    assert len(lines) == 1, [line.message for line in ts.logs(job.id)]
    report: dict[str, Any] = json.loads(lines[0].removeprefix("ATTACK "))
    held = [
        what
        for what, value in platform_secrets(platform).items()
        if value
        and any(
            hashlib.sha256(value.encode()).hexdigest() in hashes
            for hashes in report["env"].values()
        )
    ]
    return report["results"], held


def judge(lane: str, results: dict[str, str], held: list[str]) -> None:
    """Print the lane's line and fail on anything not refused."""
    outcomes = dict(results)
    outcomes["find the platform's secrets in its environment"] = (
        f"allowed: found {held}" if held else "refused: none there"
    )
    refused = [name for name, outcome in outcomes.items() if outcome.startswith("refused")]
    print(f"\nlane={lane} attempts={len(outcomes)} refused={len(refused)}")
    allowed = {n: o for n, o in outcomes.items() if not o.startswith("refused")}
    assert not allowed, f"lane {lane}: not refused: {allowed}"


def test_a_process_lane_job_is_refused_everything_beyond_its_own_run(
    ts: TaskScheduler, platform: LocalPlatform, write_client: httpx.Client, victim: dict[str, str]
) -> None:
    results, held = attack(ts, write_client, platform, victim, "process")
    judge("process", results, held)


def test_a_fast_lane_job_is_refused_everything_beyond_its_own_run(
    ts: TaskScheduler, platform: LocalPlatform, write_client: httpx.Client, victim: dict[str, str]
) -> None:
    results, held = attack(ts, write_client, platform, victim, "fast")
    judge("fast", results, held)


def test_a_sandbox_lane_job_is_refused_everything_beyond_its_own_run(
    ts: TaskScheduler, platform: LocalPlatform, write_client: httpx.Client, victim: dict[str, str]
) -> None:
    results, held = attack(ts, write_client, platform, victim, "sandbox")
    judge("sandbox", results, held)


def test_a_docker_lane_job_is_refused_everything_beyond_its_own_run(
    ts: TaskScheduler,
    docker_platform: LocalPlatform,
    write_client: httpx.Client,
    victim: dict[str, str],
) -> None:
    results, held = attack(ts, write_client, docker_platform, victim, "docker")
    judge("docker", results, held)


def test_the_gateway_audits_what_it_refused_and_the_victim_is_untouched(
    ts: TaskScheduler, platform: LocalPlatform, victim: dict[str, str]
) -> None:
    """The refusals of the attackers through the gateway are in the audit log, and the run
    they tried to cancel is still waiting."""
    import asyncio

    from taskscheduler import audit, store

    async def rows() -> list[audit.AuditEntry]:
        engine = store.create_engine(platform.settings, pooled=False)
        try:
            return await audit.query(engine, action="gate.refuse", limit=1000)
        finally:
            await engine.dispose()

    details = [row.detail or "" for row in asyncio.run(rows()) if row.source == "gateway"]
    assert any(f"flow_runs/{victim['run']}/set_state" in d for d in details), details[:20]
    assert any(victim["secret"] in d for d in details), details[:20]
    assert ts.job(victim["run"]).state is JobState.PENDING


def test_each_component_has_a_database_role_of_its_own_and_the_api_cannot_rewrite_the_audit(
    platform: LocalPlatform,
) -> None:
    """The API's role may INSERT and SELECT the audit log and nothing more; no role of the
    platform is superuser; the audit log's owner cannot log in."""
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.ext.asyncio import create_async_engine

    roles = platform.roles
    api_url = platform.api_database_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    admin_url = platform.settings.asyncpg_url

    async def check() -> dict[str, str]:
        outcomes: dict[str, str] = {}
        admin = create_async_engine(admin_url)
        try:
            async with admin.connect() as conn:
                rows = await conn.execute(
                    text(
                        "SELECT rolname, rolsuper, rolcanlogin FROM pg_roles"
                        " WHERE rolname = ANY(:names)"
                    ),
                    {"names": list(roles.all)},
                )
                found = {r.rolname: (r.rolsuper, r.rolcanlogin) for r in rows}
                owner = await conn.scalar(
                    text("SELECT tableowner FROM pg_tables WHERE tablename = 'audit_log'")
                )
        finally:
            await admin.dispose()
        assert found == {
            roles.prefect: (False, True),
            roles.api: (False, True),
            roles.audit: (False, False),
        }
        assert owner == roles.audit
        api = create_async_engine(api_url, isolation_level="AUTOCOMMIT")
        try:
            for what, statement in {
                "disable its triggers": "ALTER TABLE taskscheduler.audit_log DISABLE TRIGGER ALL",
                "replica mode": "SET session_replication_role = replica",
                "update a row": "UPDATE taskscheduler.audit_log SET detail = 'rewritten'",
                "delete rows": "DELETE FROM taskscheduler.audit_log",
                "truncate": "TRUNCATE taskscheduler.audit_log",
                "drop it": "DROP TABLE taskscheduler.audit_log",
                "read it": "SELECT count(*) FROM taskscheduler.audit_log",
                "append": "INSERT INTO taskscheduler.audit_log"
                " (actor_kind, actor_name, source, action, outcome)"
                " VALUES ('local', 'test', 'sdk', 'test.role', 'ok')",
            }.items():
                try:
                    async with api.connect() as conn:
                        await conn.execute(text(statement))
                    outcomes[what] = "allowed"
                except DBAPIError as exc:
                    outcomes[what] = f"refused: {str(exc.orig).splitlines()[0]}"
        finally:
            await api.dispose()
        return outcomes

    outcomes = asyncio.run(check())
    assert outcomes.pop("read it") == "allowed"
    assert outcomes.pop("append") == "allowed"
    assert all(o.startswith("refused") for o in outcomes.values()), outcomes
