"""The job gateway: a Prefect API of one flow run, in front of the real one.

Jobs reach it through a unix socket (the *door*) bind-mounted into their sandbox or container;
they hold a credential for their own run (``credential``), never the platform's auth string.
Each call is checked against ``rules`` with the facts of the job's run as Prefect holds them
and, when allowed, forwarded with the platform's own credentials. Everything else is answered
403 and written to the audit log (``refusals``). Prefect's event websockets are relayed by
``events``; ``app`` serves both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from taskscheduler._prefect import rest
from taskscheduler.gate import credential, rules
from taskscheduler.gate.refusals import Refusals

log = logging.getLogger("taskscheduler.gate")

API_PREFIX = "/api"
# The gateway's own endpoint, under the API prefix so a job's Prefect client reaches it.
MISFIRE_PATH = "/_gate/misfire"
MAX_BODY_BYTES = 16 * 1024 * 1024
# How long the facts of a run are trusted before they are read again (its state, its lease).
FACTS_TTL = 5.0
# How long after its run ended a credential still works (the engine's last logs and events).
AFTER_END = dt.timedelta(minutes=2)
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-authenticate",
    }
)
_NOT_FORWARDED = _HOP_BY_HOP | {
    "host",
    "authorization",
    "prefect-csrf-token",
    "prefect-csrf-client",
}


class Refused(Exception):
    """A call the gateway does not forward; ``status`` and ``reason`` are the answer."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


@dataclasses.dataclass
class _Facts:
    own: rules.Own
    state_type: str | None
    state_at: dt.datetime | None
    read_at: float


class Gate:
    """The gateway's state: the upstream API, the key credentials are checked with, the facts
    of the runs it has seen and the task runs it knows the owners of."""

    def __init__(
        self,
        api_url: str,
        *,
        auth_string: str,
        key: bytes,
        refusals: Refusals,
        timeout: float = 30.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.auth_string = auth_string
        self.key = key
        self.refusals = refusals
        headers = rest.auth_headers(auth_string, None)
        self.upstream = rest.Api(api_url, timeout=timeout, headers=headers)
        self.facts: dict[str, _Facts] = {}
        self.task_runs: dict[str, str] = {}  # task run id → its flow run id
        self.blocks: dict[str, set[str]] = {}  # run id → block documents it loaded

    async def close(self) -> None:
        """Close the upstream connections."""
        await self.upstream.close()

    # ---- who is calling ------------------------------------------------------------------

    def run_of(self, auth: str) -> str:
        """The run id a job's credential names (a basic-auth header or its websocket token)."""
        try:
            secret = (
                credential.from_basic_header(auth)
                if auth.lower().startswith("basic ")
                else credential.from_auth_string(auth)
            )
            return str(credential.verify(self.key, secret).run_id)
        except credential.InvalidCredential as exc:
            raise Refused(401, f"no valid job credential ({exc})") from None

    async def own(self, run_id: str) -> rules.Own:
        """The job's own objects, read from its run (again once ``FACTS_TTL`` has passed)."""
        facts = self.facts.get(run_id)
        if facts is None or time.monotonic() - facts.read_at > FACTS_TTL:
            facts = await self._read_facts(run_id)
            self.facts[run_id] = facts
        ended = facts.state_type in FINAL_STATES and facts.state_at is not None
        if ended and dt.datetime.now(dt.UTC) - facts.state_at > AFTER_END:  # type: ignore[operator]
            raise Refused(401, "the credential's run has ended")
        blocks = frozenset(self.blocks.get(run_id, ()))
        return dataclasses.replace(facts.own, block_ids=blocks)

    async def _read_facts(self, run_id: str) -> _Facts:
        response = await self.upstream.send("GET", f"flow_runs/{run_id}")
        if response.status_code == 404:
            raise Refused(401, "the credential's run does not exist")
        response.raise_for_status()
        run = response.json()
        parameters = run.get("parameters") or {}
        secrets = parameters.get("secrets") or {}
        state = run.get("state") or {}
        details = state.get("state_details") or {}
        lease = details.get("deployment_concurrency_lease_id")
        at = state.get("timestamp")
        own = rules.Own(
            run_id=run_id,
            task=parameters.get("task") if isinstance(parameters.get("task"), str) else None,
            flow_id=str(run.get("flow_id", "")).lower(),
            deployment_id=str(run["deployment_id"]).lower() if run.get("deployment_id") else None,
            code=parameters.get("code") if isinstance(parameters.get("code"), str) else None,
            secrets=frozenset(str(v) for v in secrets.values())
            if isinstance(secrets, dict)
            else frozenset(),
            lease_id=str(lease).lower() if lease else None,
            work_pool=run.get("work_pool_name"),
            work_queue_id=str(run["work_queue_id"]).lower() if run.get("work_queue_id") else None,
        )
        return _Facts(
            own=own,
            state_type=run.get("state_type"),
            state_at=dt.datetime.fromisoformat(at.replace("Z", "+00:00")) if at else None,
            read_at=time.monotonic(),
        )

    async def owner_of_task_run(self, task_run_id: str) -> str | None:
        """The flow run a task run belongs to (None when there is no such task run)."""
        if task_run_id not in self.task_runs:
            response = await self.upstream.send("GET", f"task_runs/{task_run_id}")
            if response.status_code == 404:
                return None
            response.raise_for_status()
            owner = response.json().get("flow_run_id")
            if owner is None:
                return None
            self.task_runs[task_run_id] = str(owner).lower()
        return self.task_runs[task_run_id]

    # ---- HTTP ----------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Check one call and forward it, or refuse it."""
        path = request.url.path
        run_id: str | None = None
        try:
            if not path.startswith(API_PREFIX + "/"):
                raise Refused(404, "not an API path")
            path = path[len(API_PREFIX) :]
            run_id = self.run_of(request.headers.get("authorization", ""))
            own = await self.own(run_id)
            if request.method == "GET" and path == MISFIRE_PATH:
                return JSONResponse(await self.misfire_facts(own, request.query_params))
            body: Any = None
            raw = await _body(request)
            if rules.needs_body(request.method, path):
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    raise Refused(422, "the body is not JSON") from None
            verdict = rules.decide(request.method, path, request.query_params, body, own)
            if verdict.kind == "csrf":
                # Prefect's client then sends no CSRF token; the gateway adds its own upstream.
                return JSONResponse({"detail": "CSRF protection is disabled."}, status_code=422)
            if verdict.kind == "task_run":
                assert verdict.task_run_id is not None
                if await self.owner_of_task_run(verdict.task_run_id) != own.run_id:
                    verdict = rules.refuse("a task run of another flow run")
            if verdict.kind == "refuse":
                raise Refused(403, verdict.reason)
            return await self.forward(request, path, raw, own)
        except Refused as refused:
            await self.refusals.note(
                run_id, f"{request.method} {path}", refused.reason, client=_client(request)
            )
            return JSONResponse(
                {"detail": f"refused by the job gateway: {refused.reason}"},
                status_code=refused.status,
            )
        except httpx.HTTPError as exc:
            log.warning("upstream call for %s %s failed: %s", request.method, path, exc)
            return JSONResponse({"detail": "the Prefect API is unavailable"}, status_code=503)

    async def forward(self, request: Request, path: str, raw: bytes, own: rules.Own) -> Response:
        """Send an allowed call upstream with the platform's credentials; relay the answer."""
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        response = await self.upstream.send(
            request.method,
            path.lstrip("/"),
            params=list(request.query_params.multi_items()),
            content=raw or None,
            headers=headers,
        )
        if path.startswith("/block_types/slug/") and response.status_code == 200:
            # Remember the block documents it read: it may report having loaded them.
            with contextlib.suppress(ValueError, AttributeError, KeyError):
                self.blocks.setdefault(own.run_id, set()).add(str(response.json()["id"]).lower())
        kept = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP}
        return Response(response.content, status_code=response.status_code, headers=kept)

    async def misfire_facts(self, own: rules.Own, query: Mapping[str, str]) -> dict[str, Any]:
        """When a worker picked the job's run up and how many later ticks of its task were due
        then: what the misfire policy needs, without letting the job read other runs."""
        started = _parse_time(query.get("started")) or dt.datetime.now(dt.UTC)
        response = await self.upstream.send(
            "GET", "flow_run_states/", params={"flow_run_id": own.run_id}
        )
        response.raise_for_status()
        pending = [
            t
            for s in response.json()
            if s.get("type") == "PENDING" and (t := _parse_time(s.get("timestamp")))
        ]
        picked_up = min(max(pending), started) if pending else started
        run = await self.upstream.send("GET", f"flow_runs/{own.run_id}")
        run.raise_for_status()
        facts = run.json()
        newer = 0
        if own.deployment_id is not None and facts.get("expected_start_time"):
            newer = await self.upstream.newer_ticks_due(
                {
                    "id": own.run_id,
                    "deployment_id": own.deployment_id,
                    "expected_start_time": facts["expected_start_time"],
                },
                picked_up.timestamp(),
            )
        return {"picked_up": picked_up.isoformat(), "newer_due": newer}


async def _body(request: Request) -> bytes:
    """The request body, refused past ``MAX_BODY_BYTES`` without reading further."""
    if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
        raise Refused(413, "the body is too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise Refused(413, "the body is too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def _parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
