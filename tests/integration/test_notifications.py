"""Notifications: failed, crashed, late and over-SLA jobs reach a webhook and an SMTP sink."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from prefect.client.orchestration import get_client

from taskscheduler import TaskScheduler, errors
from taskscheduler._prefect import automations as notifications
from taskscheduler.platform import LocalPlatform
from tests.integration.conftest import free_port
from tests.integration.helpers import scheduler, unique, wait_for

pytestmark = pytest.mark.slow


class Receiver:
    """A local HTTP endpoint that keeps every JSON body posted to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        return [str(b.get("text", "")) for b in self.bodies]


class Sink:
    """aiosmtpd handler keeping every message."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content.decode(errors="replace"))
        return "250 OK"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Sink, int]]:
    sink, port = Sink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


@pytest.fixture(scope="module")
def ts(platform: LocalPlatform) -> Iterator[TaskScheduler]:
    with scheduler() as client:
        yield client


def save_blocks(hook: str, mail: str, url: str, port: int) -> None:
    async def save() -> None:
        async with get_client() as client:
            await notifications.save_webhook(client, hook, url)
            await notifications.save_email(
                client, mail, host="127.0.0.1", port=port, sender="tasks@localhost",
                to=["oncall@localhost"],
            )  # fmt: skip

    asyncio.run(save())


def test_failed_job_notifies_webhook_and_email_with_task_state_reason_and_link(
    ts: TaskScheduler, platform: LocalPlatform, receiver: Receiver, smtp: tuple[Sink, int]
) -> None:
    sink, port = smtp
    hook, mail = unique("hook"), unique("mail")
    save_blocks(hook, mail, receiver.url, port)
    name = unique("notify")
    ts.create(
        {"name": name, "code": "def main():\n    raise ValueError('disk full')\n",
         "notify": [hook, mail]}
    )  # fmt: skip
    job = ts.wait(ts.run(name).id, timeout=180)
    assert job.state_name == "Failed"

    def webhook() -> str | None:
        return next((t for t in receiver.texts() if job.id in t and "Failed" in t), None)

    text = wait_for(webhook, timeout=90, what="webhook notification")
    assert name in text and "disk full" in text
    assert f"{platform.ui_url}/runs/flow-run/{job.id}" in text, text
    mailed = wait_for(
        lambda: next((m for m in sink.messages if job.id in m), None), timeout=90, what="e-mail"
    )
    assert "Subject: [taskscheduler] " in mailed and name in mailed


def test_job_over_its_max_runtime_notifies_once(
    ts: TaskScheduler, receiver: Receiver, smtp: tuple[Sink, int]
) -> None:
    sink, port = smtp
    hook, mail = unique("hook"), unique("mail")
    save_blocks(hook, mail, receiver.url, port)
    name = unique("sla")
    ts.create(
        {"name": name, "code": "import time\ndef main():\n    time.sleep(12)\n",
         "max_runtime": "3s", "notify": [hook, mail]}
    )  # fmt: skip
    job = ts.run(name)

    def sla() -> list[str] | None:
        found = [t for t in receiver.texts() if job.id in t and "SLA" in t]
        return found or None

    texts = wait_for(sla, timeout=120, what="SLA notification")
    assert "max_runtime of 3s" in texts[0]
    mailed = wait_for(lambda: mail_about(sink, job.id, "SLA"), timeout=90, what="SLA e-mail")
    assert "max_runtime of 3s" in mailed
    assert ts.wait(job.id, timeout=120).state_name == "Completed"
    assert len([t for t in receiver.texts() if job.id in t and "SLA" in t]) == 1


def mail_about(sink: Sink, job_id: str, word: str) -> str | None:
    """The first message about a job whose subject names ``word``."""
    return next(
        (m for m in sink.messages if job_id in m and word in m.split("Subject:", 1)[-1][:200]),
        None,
    )


def test_crashed_and_late_jobs_are_mailed(ts: TaskScheduler, smtp: tuple[Sink, int]) -> None:
    """A fast-lane job whose process dies (Crashed), and a job still waiting a minute past its
    time, Late by Prefect's late-runs service (here: in a pool no worker serves)."""
    from prefect.client.schemas.actions import WorkPoolCreate

    sink, port = smtp
    mail = unique("mail")
    save_blocks(unique("hook"), mail, "http://127.0.0.1:9/unused", port)
    crashing = unique("crash")
    ts.create(
        {"name": crashing, "code": "import os\ndef main():\n    os._exit(3)\n", "pool": "fast",
         "notify": [mail]}
    )  # fmt: skip
    crashed = ts.run(crashing)
    pool = unique("idle-pool")

    async def create_pool() -> None:
        async with get_client() as client:
            await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))

    asyncio.run(create_pool())
    waiting = unique("late")
    ts.create(
        {"name": waiting, "code": "def main():\n    pass\n", "pool": pool, "notify": [mail]}
    )  # fmt: skip
    overdue = ts.schedule(waiting, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3))

    assert ts.wait(crashed.id, timeout=90).state_name == "Crashed"
    for job_id, task, word in ((crashed.id, crashing, "Crashed"), (overdue.id, waiting, "Late")):
        try:
            mailed = wait_for(lambda j=job_id, w=word: mail_about(sink, j, w), timeout=90)  # type: ignore[misc]
        except AssertionError:
            heads = [m.split("Subject:", 1)[-1][:100] for m in sink.messages]
            raise AssertionError(f"no {word} e-mail about {job_id}; mails: {heads}") from None
        assert task in mailed
    assert ts.job(overdue.id).state_name == "Late"
    ts.delete(waiting)
    ts.delete(crashing)


def test_notify_naming_a_missing_block_is_refused(ts: TaskScheduler) -> None:
    with pytest.raises(errors.InvalidTask) as refused:
        ts.create({"name": unique("nope"), "code": "def main():\n    pass\n",
                   "notify": ["no-such-block"]})  # fmt: skip
    assert refused.value.field == "notify"


def test_set_up_deletes_the_retired_zombie_automation(platform: LocalPlatform) -> None:
    """Platforms set up before the watchdog crashed silent jobs itself kept Prefect's zombie
    automation; set-up deletes it, so one crash detector runs, not two."""
    from prefect.events.actions import DoNothing
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    retired = AutomationCore(
        name=notifications.RETIRED_ZOMBIE_AUTOMATION,
        trigger=EventTrigger(expect={"never.happens"}, posture=Posture.Reactive, threshold=1),
        actions=[DoNothing()],
    )

    async def set_up_over_it() -> tuple[int, int]:
        async with get_client() as client:
            await client.create_automation(retired)
            before = len(await client.read_automations_by_name(retired.name))
            await notifications.ensure_platform_automations(client, [])
            return before, len(await client.read_automations_by_name(retired.name))

    assert asyncio.run(set_up_over_it()) == (1, 0)
