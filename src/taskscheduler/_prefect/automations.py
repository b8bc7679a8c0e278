"""Telling people when jobs go wrong: Prefect automations sending to notification blocks.

Routes, all Prefect automations (visible and editable in the Prefect UI, Automations page):

- **per task** — a task naming ``notify: [ops-slack]`` gets the deployment tag
  ``notify:ops-slack``; its flow runs inherit it, so one automation per block
  (``taskscheduler: notify ops-slack``) matches the events of every run tagged for it.
- **global** — ``TASKS_NOTIFY='["ops-mail"]'``: one automation per block matching every run
  of the generic flow (``taskscheduler: notify all via ops-mail``), created by ``up``.

A running job whose heartbeats stop for ``TASKS_ZOMBIE_AFTER`` is marked Crashed by the watchdog
(``services.watchdog``), which notifies through these routes. Earlier platforms did it with
Prefect's documented "detect zombie flows" automation (``taskscheduler: crash zombie jobs``);
it cost the triggers service a locked transaction per job event, and ``up`` now deletes it.

Events notified: ``prefect.flow-run.Failed``, ``.Crashed``, ``.Late`` (Prefect's late-runs
service, after ``TASKS_LATE_AFTER``) and ``taskscheduler.job.sla-exceeded`` (the watchdog, when
a job runs longer than its task's ``max_runtime``; Prefect's open-source server has no SLA).

Blocks: any Prefect notification block works (Slack, Teams, ...). ``save_webhook`` stores a
Slack-compatible JSON webhook (``{"text": ...}``, Prefect's ``CustomWebhookNotificationBlock``)
for any URL; ``SmtpEmail`` sends mail through an SMTP server (Prefect's own e-mail
notification block is SendGrid's). The Prefect server loads ``SmtpEmail`` through the
``prefect.collections`` entry point of this package.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import smtplib
import ssl
import uuid
from email.message import EmailMessage
from typing import Any, ClassVar

from prefect.blocks.abstract import NotificationBlock
from pydantic import Field, SecretStr

from taskscheduler import errors, policy

TAG_PREFIX = "notify:"
AUTOMATION_PREFIX = "taskscheduler: "
RETIRED_ZOMBIE_AUTOMATION = f"{AUTOMATION_PREFIX}crash zombie jobs"
SLA_EVENT = "taskscheduler.job.sla-exceeded"
NOTIFIED_EVENTS = frozenset(
    {
        "prefect.flow-run.Failed",
        "prefect.flow-run.Crashed",
        "prefect.flow-run.Late",
        SLA_EVENT,
    }
)
SMTP_TIMEOUT = 20.0

SUBJECT = (
    "[taskscheduler] {{ deployment.name if deployment else 'job' }}: "
    "{{ event.payload.get('summary') or flow_run.state.name }}"
)
BODY = """\
Task:   {{ deployment.name if deployment else '(deleted)' }}
Job:    {{ flow_run.name }} ({{ flow_run.id }})
State:  {{ flow_run.state.name }}
Event:  {{ event.event }} at {{ event.occurred }}
Reason: {{ event.payload.get('reason') or flow_run.state.message or '-' }}
Link:   {{ flow_run|ui_url }}
"""


class SmtpEmail(NotificationBlock):
    """Send notifications as e-mail through an SMTP server (plain, STARTTLS or TLS)."""

    _block_type_name: ClassVar[str | None] = "Task Scheduler SMTP Email"
    _block_type_slug: ClassVar[str | None] = "taskscheduler-smtp-email"
    _description: ClassVar[str | None] = (
        "E-mail through any SMTP server, for the task scheduler's notifications."
    )

    host: str = Field(description="SMTP server host.")
    port: int = Field(default=25, description="SMTP server port (587 STARTTLS, 465 TLS).")
    security: str = Field(
        default="none", pattern="^(none|starttls|tls)$", description="none, starttls or tls."
    )
    username: str | None = Field(default=None, description="Login, if the server wants one.")
    password: SecretStr | None = Field(default=None, description="Password of the login.")
    sender: str = Field(description="From address.")
    to: list[str] = Field(min_length=1, description="Recipient addresses.")

    async def notify(self, body: str, subject: str | None = None) -> None:
        """Send one message to every recipient."""
        message = EmailMessage()
        message["Subject"] = subject or "taskscheduler notification"
        message["From"] = self.sender
        message["To"] = ", ".join(self.to)
        message.set_content(body)
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.security == "tls":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=SMTP_TIMEOUT, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT)
        with smtp:
            if self.security == "starttls":
                smtp.starttls(context=context)
            if self.username:
                password = self.password.get_secret_value() if self.password else ""
                smtp.login(self.username, password)
            smtp.send_message(message)


def tag(block: str) -> str:
    """The deployment tag routing a task's job events to notification block ``block``."""
    return f"{TAG_PREFIX}{block}"


# ---- automations -------------------------------------------------------------------------


def _notify_automation(name: str, block_id: uuid.UUID, related: dict[str, str]) -> Any:
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return AutomationCore(
        name=name,
        description="Created by the task scheduler; edit TASKS_NOTIFY or the task's notify.",
        trigger=EventTrigger(
            expect=set(NOTIFIED_EVENTS),
            match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
            match_related=ResourceSpecification(related),
            posture=Posture.Reactive,
            threshold=1,
            within=dt.timedelta(0),
        ),
        actions=[SendNotification(block_document_id=block_id, subject=SUBJECT, body=BODY)],
    )


async def _block_id(client: Any, name: str) -> uuid.UUID:
    """The notification block document named ``name`` (any notification block type)."""
    response = await client.request(
        "POST",
        "/block_documents/filter",
        json={
            "block_documents": {"name": {"any_": [name]}, "is_anonymous": {"eq_": False}},
            "block_schemas": {"block_capabilities": {"all_": ["notify"]}},
            "limit": 2,
        },
    )
    found = response.json()
    if not found:
        raise errors.InvalidTask("notify", f"no notification block named {name!r}")
    return uuid.UUID(found[0]["id"])


async def _ensure(client: Any, automation: Any) -> uuid.UUID:
    """Create the automation, or bring the one of that name up to date."""
    existing = await client.read_automations_by_name(automation.name)
    if existing:
        await client.update_automation(existing[0].id, automation)
        return uuid.UUID(str(existing[0].id))
    created: uuid.UUID = await client.create_automation(automation)
    return created


async def route_tasks(client: Any, blocks: list[str]) -> None:
    """Make sure the per-task route of every block exists; refuse blocks that do not."""
    for block in blocks:
        block_id = await _block_id(client, block)
        await _ensure(
            client,
            _notify_automation(
                f"{AUTOMATION_PREFIX}notify {block}",
                block_id,
                {"prefect.resource.id": f"prefect.tag.{tag(block)}"},
            ),
        )


async def route_all(client: Any, blocks: list[str]) -> None:
    """Make sure every block of ``TASKS_NOTIFY`` hears about every task's jobs."""
    for block in blocks:
        block_id = await _block_id(client, block)
        await _ensure(
            client,
            _notify_automation(
                f"{AUTOMATION_PREFIX}notify all via {block}",
                block_id,
                {"prefect.resource.role": "flow", "prefect.resource.name": policy.FLOW_NAME},
            ),
        )


async def ensure_platform_automations(client: Any, blocks: list[str]) -> None:
    """What ``up`` sets up: the global routes; and the retired zombie automation removed, so a
    platform set up before keeps one crash detector (the watchdog), not two."""
    for retired in await client.read_automations_by_name(RETIRED_ZOMBIE_AUTOMATION):
        await client.delete_automation(retired.id)
    await route_all(client, blocks)


async def save_webhook(client: Any, name: str, url: str) -> uuid.UUID:
    """Store a Slack-compatible JSON webhook (``{"text": subject + body}``) as block ``name``."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(
        name=name,
        url=url,
        method="POST",
        json_data={"text": "{{subject}}\n{{body}}"},
    )
    saved: uuid.UUID = await block.asave(name, overwrite=True, client=client)
    return saved


async def save_email(client: Any, name: str, **fields: Any) -> uuid.UUID:
    """Store an ``SmtpEmail`` block as ``name`` (fields as the block's)."""
    saved: uuid.UUID = await SmtpEmail(**fields).asave(name, overwrite=True, client=client)
    return saved
