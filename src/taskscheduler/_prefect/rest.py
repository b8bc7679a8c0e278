"""The few Prefect API calls of the fast lane, as plain JSON over one HTTP connection pool.

The worker's CPU per job is one of the tiers that bound throughput, so these calls skip the
client's model layer and exchange plain JSON. Every call here serves many runs at once
except the per-run ones that carry a run's own message (failures, retries).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import time
import uuid
from collections.abc import Sequence
from typing import Any

import httpx

from taskscheduler.fastlane.settings import BULK_LIMIT
from taskscheduler.reliability import HEARTBEAT_EVENT

JSON = dict[str, Any]
# The most objects a filter call returns (Prefect's default API limit).
PAGE_LIMIT = 200

ACCEPT = "ACCEPT"
# Our block type of a task's code versions (``_prefect.blocks``).
CODE_BLOCK_TYPE = "task-code"
# The set-based endpoints our server adds to Prefect's API (``_prefect.server.routes``).
FAST = "taskscheduler/fast"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def iso(timestamp: float) -> str:
    """An epoch timestamp as the ISO 8601 UTC text the API expects."""
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat()


def epoch(text: str) -> float:
    """An ISO 8601 timestamp from the API as epoch seconds."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def chunks(items: Sequence[str], size: int = BULK_LIMIT) -> list[list[str]]:
    """``items`` in lists of at most ``size``."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def auth_headers(auth_string: str | None, api_key: str | None) -> dict[str, str]:
    """The ``Authorization`` header Prefect's own client would send."""
    if auth_string:
        return {"Authorization": f"Basic {base64.b64encode(auth_string.encode()).decode()}"}
    if api_key:
        return {"Authorization": f"Bearer {api_key}"}
    return {}


def from_prefect_settings() -> tuple[str, dict[str, str]]:
    """The API address and credentials, as Prefect's own settings (env or profile) give them."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY

    from taskscheduler._prefect.gateway import api_url

    return api_url(), auth_headers(PREFECT_API_AUTH_STRING.value(), PREFECT_API_KEY.value())


class Api:
    """Async calls to one Prefect API (basic auth and CSRF tokens as the server demands)."""

    def __init__(self, url: str, *, timeout: float, headers: dict[str, str] | None = None) -> None:
        self.http = httpx.AsyncClient(
            base_url=url.rstrip("/") + "/",
            timeout=timeout,
            headers=headers or {},
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
        )
        self.csrf_client = str(uuid.uuid4())
        self.csrf: dict[str, str] = {}
        self.csrf_expires = 0.0
        self.csrf_enabled = True
        # The server keeps one token per client id and a fetch replaces it: concurrent fetches
        # would invalidate each other's tokens, so one fetch at a time.
        self.csrf_lock = asyncio.Lock()

    async def close(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def _csrf_headers(self, *, refused: dict[str, str] | None = None) -> dict[str, str]:
        """A CSRF token for state-changing calls, fetched once and renewed before it expires.

        ``refused``: the headers the server just refused; renewed unless another call already
        replaced them.
        """
        if not self.csrf_enabled:
            return {}
        async with self.csrf_lock:
            renew = refused is not None and refused == self.csrf
            if renew or not self.csrf or time.time() > self.csrf_expires - 60:
                await self._fetch_csrf()
        return self.csrf

    async def _fetch_csrf(self) -> None:
        response = await self.http.get("csrf-token", params={"client": self.csrf_client})
        if response.status_code in (404, 422):  # an older server, or protection disabled
            self.csrf_enabled = False
            self.csrf = {}
            return
        response.raise_for_status()
        token = response.json()
        self.csrf = {
            "Prefect-Csrf-Token": token["token"],
            "Prefect-Csrf-Client": self.csrf_client,
        }
        self.csrf_expires = epoch(token["expiration"])

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        content: bytes | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One call as it is, a CSRF token added to state-changing ones (renewed once if
        refused); the answer whatever its status."""
        extra = {} if method.upper() in SAFE_METHODS else await self._csrf_headers()
        response = await self.http.request(
            method,
            path,
            params=params,
            content=content,
            json=json,
            headers={**(headers or {}), **extra},
        )
        if extra and response.status_code == 403 and "csrf" in response.text.lower():
            extra = await self._csrf_headers(refused=extra)
            response = await self.http.request(
                method,
                path,
                params=params,
                content=content,
                json=json,
                headers={**(headers or {}), **extra},
            )
        return response

    async def _post(self, path: str, body: Any) -> Any:
        response = await self.send("POST", path, json=body)
        if response.is_error:
            raise httpx.HTTPStatusError(
                f"{response.status_code} from {path}: {response.text[:500]}",
                request=response.request,
                response=response,
            )
        return response.json() if response.content else None

    async def heartbeat(self, pool: str, name: str, interval: float) -> None:
        """Tell the server this worker is online on ``pool``."""
        await self._post(
            f"work_pools/{pool}/workers/heartbeat",
            {"name": name, "heartbeat_interval_seconds": max(1, round(interval))},
        )

    async def scheduled_runs(self, pool: str, before: float, limit: int) -> list[JSON]:
        """Scheduled runs of the pool due before ``before`` (the pool's queues and limits apply)."""
        found: list[JSON] = await self._post(
            f"work_pools/{pool}/get_scheduled_flow_runs",
            {"scheduled_before": iso(before), "limit": limit},
        )
        return [item["flow_run"] for item in found]

    async def bulk_set_state(
        self, run_ids: Sequence[str], state: JSON, *, force: bool = False
    ) -> dict[str, JSON]:
        """Propose one state to up to 50 runs; each run's orchestration result by run id.

        The server locks and orchestrates each run in its own transaction, so the rules that
        make a claim exclusive (a second Scheduled → Pending is aborted) hold per run.
        Runs that no longer exist are absent from the answer.
        """
        assert len(run_ids) <= BULK_LIMIT
        answer: JSON = await self._post(
            "flow_runs/bulk_set_state",
            {
                "flow_runs": {"id": {"any_": list(run_ids)}},
                "state": state,
                "force": force,
                "limit": BULK_LIMIT,
            },
        )
        return {str(r["flow_run_id"]): r for r in answer["results"]}

    async def fast_claim(
        self, pool: str, before: float, limit: int, transition_id: str, *, repeat: bool = False
    ) -> JSON:
        """Claim up to ``limit`` runs of ``pool`` due before ``before`` in one transaction:
        ``claimed`` (now Pending, ours), ``limited`` (due runs of concurrency-limited tasks,
        left to Prefect's own path). ``repeat``: this claim was sent before, its answer lost."""
        answer: JSON = await self._post(
            f"{FAST}/claim",
            {
                "pool": pool,
                "before": iso(before),
                "limit": limit,
                "transition_id": transition_id,
                "repeat": repeat,
            },
        )
        return answer

    async def fast_start(self, runs: list[JSON], transition_id: str) -> dict[str, str]:
        """``Pending → Running`` for runs still in their claimed state (``id``, ``state_id``,
        ``name``); the Running state id of each that started."""
        answer: JSON = await self._post(
            f"{FAST}/start", {"runs": runs, "transition_id": transition_id}
        )
        return {str(k): str(v) for k, v in answer["started"].items()}

    async def fast_finish(self, runs: list[JSON], logs: list[JSON], transition_id: str) -> None:
        """The log lines, then ``Running → Completed`` for runs still in their Running state,
        in one transaction."""
        await self._post(
            f"{FAST}/finish", {"runs": runs, "logs": logs, "transition_id": transition_id}
        )

    async def set_state(self, run_id: str, state: JSON, *, force: bool = False) -> JSON:
        """Propose a state to one run; its orchestration result."""
        result: JSON = await self._post(
            f"flow_runs/{run_id}/set_state", {"state": state, "force": force}
        )
        return result

    async def concurrency_limit_names(self) -> list[str]:
        """The names of all global concurrency limits, page by page."""
        names: list[str] = []
        while True:
            page: list[JSON] = await self._post(
                "v2/concurrency_limits/filter", {"limit": PAGE_LIMIT, "offset": len(names)}
            )
            names.extend(str(limit["name"]) for limit in page)
            if len(page) < PAGE_LIMIT:
                return names

    async def runs_not_in(self, run_ids: Sequence[str], state_types: Sequence[str]) -> list[JSON]:
        """Those of ``run_ids`` whose state is none of ``state_types`` (e.g. cancelled ones)."""
        found: list[JSON] = []
        for part in chunks(run_ids, 200):
            found.extend(
                await self._post(
                    "flow_runs/filter",
                    {
                        "flow_runs": {
                            "id": {"any_": part},
                            "state": {"type": {"not_any_": list(state_types)}},
                        },
                        "limit": len(part),
                    },
                )
            )
        return found

    async def newer_ticks_due(self, run: JSON, at: float) -> int:
        """How many later schedule ticks of ``run``'s deployment were due at ``at``."""
        after = epoch(run["expected_start_time"]) + 0.001
        found = await self._post(
            "flow_runs/filter",
            {
                "flow_runs": {
                    "deployment_id": {"any_": [run["deployment_id"]]},
                    "expected_start_time": {"after_": iso(after), "before_": iso(at)},
                },
                "limit": 20,
            },
        )
        return sum(1 for r in found if r.get("auto_scheduled") and r["id"] != run["id"])

    async def run_heartbeats(self, run_ids: Sequence[str]) -> None:
        """``prefect.flow-run.heartbeat`` events for running runs, in one call.

        The watchdog's crash rule (``_prefect.server.silence``) then also covers fast-lane jobs
        that run long: if this worker dies, they are marked Crashed. A job shorter than
        ``TASKS_ZOMBIE_AFTER`` needs none: its Running state is sign of life enough.
        """
        if run_ids:
            await self._post("events", run_heartbeat_events(run_ids, time.time()))

    async def create_logs(self, logs: list[JSON]) -> None:
        """Store log lines of any runs in one call."""
        if logs:
            await self._post("logs/", logs)

    async def secret_value(self, name: str) -> str:
        """The value of the Secret block ``name`` (raises if there is none)."""
        response = await self.http.get(
            f"block_types/slug/secret/block_documents/name/{name}",
            params={"include_secrets": "true"},
        )
        response.raise_for_status()
        value = response.json()["data"]["value"]
        # As Prefect's Secret.get() would give it, then str() as the job runtime does.
        return value if isinstance(value, str) else str(value)

    async def code_blocks(self, names: Sequence[str]) -> dict[str, JSON]:
        """The data of the ``task-code`` block documents ``names`` that exist, by name: one
        call for up to ``PAGE_LIMIT`` of them."""
        found: dict[str, JSON] = {}
        names = list(names)
        for first in range(0, len(names), PAGE_LIMIT):
            chunk = names[first : first + PAGE_LIMIT]
            documents = await self._post(
                "block_documents/filter",
                {
                    "block_documents": {"name": {"any_": chunk}},
                    "block_types": {"slug": {"any_": [CODE_BLOCK_TYPE]}},
                    "include_secrets": True,
                    "limit": len(chunk),
                },
            )
            found.update((d["name"], d["data"]) for d in documents)
        return found

    async def code_block(self, name: str) -> JSON | None:
        """The data of the ``task-code`` block document ``name`` (immutable once written)."""
        response = await self.http.get(
            f"block_types/slug/{CODE_BLOCK_TYPE}/block_documents/name/{name}",
            params={"include_secrets": "true"},
        )
        if response.status_code == 404:
            return None
        response.raise_for_status()
        data: JSON = response.json()["data"]
        return data


def run_heartbeat_events(run_ids: Sequence[str], at: float) -> list[JSON]:
    """The heartbeat events of running runs at ``at`` (epoch seconds), as Prefect takes them."""
    occurred = iso(at)
    return [
        {
            "id": str(uuid.uuid4()),
            "occurred": occurred,
            "event": HEARTBEAT_EVENT,
            "resource": {"prefect.resource.id": f"prefect.flow-run.{run_id}"},
            "related": [],
            "payload": {},
        }
        for run_id in run_ids
    ]
