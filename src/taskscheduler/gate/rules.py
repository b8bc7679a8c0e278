"""What a job may ask of the Prefect API: the calls a flow run makes about itself, nothing else.

Prefect's engine, running one flow run of the generic flow, reads its own run, deployment and
flow, loads its code block and the Secret blocks its task declared, sets its own states,
writes its own logs, and reports its task runs and heartbeats as events. Every rule below
admits one of those, for the job's *own* objects only (``Own``; its own work pool and queue
may be read too: Prefect's event helpers name them in the events of the run); anything else
— another run, a deployment list, other blocks, variables, automations, other work pools —
is refused with a reason the gateway writes to the audit log.

The rules are pure: the proxy gathers the facts (the run as Prefect holds it, the owner of a
task run) and asks. Paths are relative to the API root (``/api`` stripped).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Literal

CODE_BLOCK_TYPE = "task-code"
SECRET_BLOCK_TYPE = "secret"  # noqa: S105 - a block type's slug

_UUID = r"[0-9a-fA-F-]{36}"
_NAME = r"[^/]+"


@dataclasses.dataclass(frozen=True)
class Own:
    """A job's own objects, from its flow run as Prefect holds it."""

    run_id: str
    flow_id: str
    task: str | None = None  # the task's name, for the audit log
    deployment_id: str | None = None
    code: str | None = None  # the task-code block document this run loads
    secrets: frozenset[str] = frozenset()  # the Secret blocks its task declared
    lease_id: str | None = None  # its deployment concurrency lease, if it holds one
    work_pool: str | None = None  # the pool and queue it was scheduled in (Prefect's event
    work_queue_id: str | None = None  # helpers read them to relate its events to them)
    block_ids: frozenset[str] = frozenset()  # block documents it has loaded (for their events)

    @property
    def resource(self) -> str:
        """The run as an event resource id."""
        return f"prefect.flow-run.{self.run_id}"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """``allow``; ``refuse`` (with why); ``csrf`` (answered by the gateway itself);
    ``task_run`` (allowed if that task run belongs to the job's run)."""

    kind: Literal["allow", "refuse", "csrf", "task_run"]
    reason: str = ""
    task_run_id: str | None = None


ALLOW = Verdict("allow")


def refuse(reason: str) -> Verdict:
    """A refusal, with the reason the audit log shows."""
    return Verdict("refuse", reason)


# Calls that only read the server's version, health and defaults.
_HARMLESS = {
    ("GET", "/admin/version"),
    ("GET", "/admin/storage"),
    ("GET", "/health"),
    ("GET", "/hello"),
    ("GET", "/ready"),
}
# Paths whose answer depends on the JSON body (the proxy parses it for these only).
BODY_RULES = frozenset({"/logs/", "/flow_runs/filter", "/task_runs/"})


def needs_body(method: str, path: str) -> bool:
    """Whether ``decide`` needs the parsed body of this call."""
    return method == "POST" and path in BODY_RULES


def decide(
    method: str,
    path: str,
    query: Mapping[str, str],
    body: Any,
    own: Own,
) -> Verdict:
    """Whether a job may make this call."""
    method = method.upper()
    if (method, path) in _HARMLESS:
        return ALLOW
    if method == "GET" and path == "/csrf-token":
        return Verdict("csrf")
    run = re.fullmatch(rf"/flow_runs/({_UUID})(/set_state|/labels)?", path)
    if run is not None:
        if run[1].lower() != own.run_id:
            return refuse("another flow run")
        allowed = {None: {"GET", "PATCH"}, "/set_state": {"POST"}, "/labels": {"PATCH"}}
        return ALLOW if method in allowed[run[2]] else refuse(f"{method} on its flow run")
    if method == "GET" and path in ("/flow_run_states/", "/flow_run_states"):
        same = query.get("flow_run_id", "").lower() == own.run_id
        return ALLOW if same else refuse("states of another flow run")
    if method == "POST" and path == "/flow_runs/filter":
        return _own_runs_only(body, own)
    if method == "GET" and (found := re.fullmatch(rf"/deployments/({_UUID})", path)):
        mine = own.deployment_id is not None and found[1].lower() == own.deployment_id
        return ALLOW if mine else refuse("another deployment")
    if method == "GET" and (found := re.fullmatch(rf"/flows/({_UUID})", path)):
        return ALLOW if found[1].lower() == own.flow_id else refuse("another flow")
    if method == "GET" and (found := re.fullmatch(rf"/work_pools/({_NAME})", path)):
        return ALLOW if found[1] == own.work_pool else refuse("another work pool")
    if method == "GET" and (found := re.fullmatch(rf"/work_queues/({_UUID})", path)):
        mine = found[1].lower() == own.work_queue_id
        return ALLOW if mine else refuse("another work queue")
    if found := re.fullmatch(rf"/block_types/slug/({_NAME})/block_documents/name/({_NAME})", path):
        return _block(method, found[1], found[2], own)
    if method == "GET" and re.fullmatch(rf"/block_types/slug/{_NAME}", path):
        return ALLOW  # a block type's schema: public metadata, no documents
    if method == "POST" and path == "/logs/":
        return _own_logs(body, own)
    if method == "POST" and path == "/task_runs/":
        mine = isinstance(body, dict) and str(body.get("flow_run_id", "")).lower() == own.run_id
        return ALLOW if mine else refuse("a task run of another flow run")
    if found := re.fullmatch(rf"/task_runs/({_UUID})(/set_state)?", path):
        read_or_patch = method in ("GET", "PATCH") and found[2] is None
        if read_or_patch or (method == "POST" and found[2] is not None):
            return Verdict("task_run", task_run_id=found[1].lower())
        return refuse(f"{method} on a task run")
    if method == "POST" and (
        found := re.fullmatch(rf"/v2/concurrency_limits/leases/({_UUID})/renew", path)
    ):
        mine = own.lease_id is not None and found[1].lower() == own.lease_id
        return ALLOW if mine else refuse("another run's concurrency lease")
    return refuse(f"{method} {path} is not a call of a job's own run")


def _block(method: str, block_type: str, name: str, own: Own) -> Verdict:
    if method != "GET":
        return refuse(f"{method} on a block document")
    if block_type == CODE_BLOCK_TYPE:
        return ALLOW if own.code is not None and name == own.code else refuse("another code block")
    if block_type == SECRET_BLOCK_TYPE:
        return ALLOW if name in own.secrets else refuse(f"secret {name!r} its task did not declare")
    return refuse(f"a block of type {block_type!r}")


def _own_runs_only(body: Any, own: Own) -> Verdict:
    """A flow-run filter is allowed when it names only the job's own run: Prefect ANDs the
    parts of a filter, so whatever else it says, the answer holds that run at most."""
    ids = _dig(body, "flow_runs", "id", "any_")
    if isinstance(ids, list) and ids and all(str(i).lower() == own.run_id for i in ids):
        return ALLOW
    return refuse("a flow-run filter beyond its own run")


def _own_logs(body: Any, own: Own) -> Verdict:
    if not isinstance(body, list):
        return refuse("malformed logs")
    for entry in body:
        if not isinstance(entry, dict) or str(entry.get("flow_run_id", "")).lower() != own.run_id:
            return refuse("logs of another flow run")
    return ALLOW


def event_allowed(event: Any, own: Own) -> str | None:
    """Why a job may not emit this event, or None when it may.

    A job reports its own run's heartbeats, its task runs (related to its run in the role
    ``flow-run``, which is what Prefect's task-run recorder files them under) and the loading
    of the blocks it may read. Nothing else: an event about another resource could fire
    automations on objects that are not the job's.
    """
    if not isinstance(event, dict):
        return "malformed event"
    resource = str((event.get("resource") or {}).get("prefect.resource.id", ""))
    related = event.get("related") or []
    runs = [
        str(r.get("prefect.resource.id", ""))
        for r in related
        if isinstance(r, dict)
        and str(r.get("prefect.resource.id", "")).startswith("prefect.flow-run.")
    ]
    if any(r != own.resource for r in runs):
        return "an event related to another flow run"
    if resource == own.resource:
        return None
    if resource.startswith("prefect.task-run."):
        if own.resource not in runs:
            return "a task-run event not related to its own run"
        task_run = (event.get("payload") or {}).get("task_run") or {}
        named = task_run.get("flow_run_id") if isinstance(task_run, dict) else None
        if named is not None and str(named).lower() != own.run_id:
            return "a task run of another flow run"
        return None
    if resource.startswith("prefect.block-document."):
        block = resource.removeprefix("prefect.block-document.").lower()
        return None if block in own.block_ids else "an event about another block"
    return f"an event about {resource or 'nothing'}"


def restrict_subscription(event_filter: Any, own: Own) -> dict[str, Any]:
    """An events-out filter narrowed to events about the job's own run (Prefect ANDs the
    parts of a filter, so replacing its resource part is enough)."""
    narrowed = dict(event_filter) if isinstance(event_filter, dict) else {}
    narrowed["resource"] = {"id": [own.resource]}
    return narrowed


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
