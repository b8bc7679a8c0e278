"""The `tasks` command line as a user drives it: every command, --json, exit codes, errors."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from taskscheduler.platform import LocalPlatform
from tests.integration.helpers import cli, cli_json, unique, wait_for

CODE = "def main(n=1):\n    print('n is', n)\n    return n * 2\n"


def _utc(text: str) -> dt.datetime:
    assert text.endswith("Z"), f"{text} is not ISO 8601 UTC"
    return dt.datetime.fromisoformat(text)


def test_task_lifecycle_through_the_cli(platform: LocalPlatform, tmp_path: Path) -> None:
    name = unique()
    code_file = tmp_path / "job.py"
    code_file.write_text(CODE)
    task = cli_json(
        "create",
        name,
        "--code-file",
        str(code_file),
        "--cron",
        "0 6 * * 1-5",
        "--tz",
        "America/New_York",
        "--param",
        "n=3",
        "--retries",
        "1",
        "--retry-delay",
        "5s",
        "--timeout",
        "1m",
        "--concurrency",
        "2",
        "--tag",
        "cli",
        "--pool",
        "process",
    )
    assert {"id", "name", "state", "deployment_id"} <= task.keys()
    assert task["name"] == name and task["state"] == "active"
    assert task["spec"]["parameters"] == {"n": 3} and task["spec"]["timeout"] == 60.0
    assert all(_utc(t).hour in (10, 11) for t in task["next_runs"]), "06:00 New York in UTC"
    assert task["timezone"] == "America/New_York"  # the JSON stays UTC and names the zone
    # People read the times on New York's clock, UTC beside them.
    shown_text = cli("show", name).stdout
    assert re.search(r"06:00:00 E[SD]T \((10|11):00:00Z\)", shown_text), shown_text

    shown = cli_json("show", name)
    assert shown["deployment_id"] == task["deployment_id"] and shown["version"] == 1
    assert name in [t["name"] for t in cli_json("list", "--search", name)]

    updated = cli_json("update", name, "--every", "2h", "--param", "n=4")
    assert updated["version"] == 2 and updated["spec"]["every"] == 7200.0
    assert updated["spec"]["cron"] is None and updated["schedule"] == "every 2h"

    assert cli_json("pause", name)["state"] == "paused"
    assert cli_json("resume", name)["state"] == "active"

    waiting = cli_json("schedule", name, "--at", "+2h")
    assert waiting["state"] == "pending" and _utc(waiting["scheduled_time"])
    moved = cli_json("reschedule", waiting["id"], "--at", "+3h")
    assert _utc(moved["scheduled_time"]) > _utc(waiting["scheduled_time"])
    assert cli_json("cancel", moved["id"])["state"] == "cancelled"

    job = cli_json("run", name, "--param", "n=21", "--wait")
    assert job["state"] == "completed" and job["code_version"] == 2
    assert job["parameters"] == {"n": 21}
    detail = cli_json("job", job["id"])
    assert [c["name"] for c in detail["timeline"]][-1] == "Completed"
    # A job's JSON stays UTC and names its task's zone; people read New York's clock.
    assert detail["timezone"] == "America/New_York" and detail["end_time"].endswith("Z")
    assert re.search(r"ended +\S+ \S+ E[SD]T \(\S+Z\)", cli("job", job["id"]).stdout)
    assert [j["id"] for j in cli_json("jobs", "--task", name, "--state", "completed")] == [
        job["id"]
    ]
    logs = wait_for(
        lambda: (
            (lines := cli_json("logs", job["id"]))
            and any(line["message"] == "Result: 42" for line in lines)
            and lines
        ),
        what="the job's logs",
    )
    assert any(line["message"] == "n is 21" for line in logs)
    assert "n is 21" in cli("logs", job["id"]).stdout

    assert cli_json("delete", name) == {"name": name, "deleted": True}
    missing = cli("show", name, check=False)
    assert missing.returncode == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "{name}", "--code", "def main(:"], "code: syntax error on line 1"),
        (["create", "{name}", "--code", "def f(): pass"], "code: no top-level function 'main'"),
        (["create", "{name}", "--code", CODE, "--cron", "* * *"], "cron:"),
        (["create", "{name}", "--code", CODE, "--tz", "Nowhere/City"], "timezone: unknown"),
        (["create", "{name}", "--code", CODE, "--param", "n=oops"], "parameters.n: not valid JSON"),
        (
            ["create", "{name}", "--code", CODE, "--every", "1m", "--start", "+2h", "--end", "+1h"],
            "end: must be after start",
        ),
        (["create", "{name}", "--code", CODE, "--cron", "0 * * * *", "--every", "5m"], "schedule"),
        (["create", "{name}", "--entrypoint", "nowhere.py:main"], "entrypoint: file"),
        (["show", "{name}"], "not found"),
        (["job", "00000000-0000-0000-0000-000000000000"], "not found"),
        (["schedule", "{name}", "--at", "yesterday-ish"], "cannot read"),
        (["jobs", "--state", "sleeping"], "state: unknown state"),
    ],
)
def test_user_errors_print_one_line_and_exit_1(
    platform: LocalPlatform, args: list[str], message: str
) -> None:
    name = unique()
    result = cli(*[a.replace("{name}", name) for a in args], check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert cli("show", name, check=False).returncode == 1, "nothing was written"


def test_apply_is_an_idempotent_upsert(platform: LocalPlatform, tmp_path: Path) -> None:
    name = unique()
    (tmp_path / "code.py").write_text(CODE)
    spec = tmp_path / "task.yaml"
    spec.write_text(f"name: {name}\ncode_file: code.py\nevery: 10m\nparameters: {{n: 1}}\n")
    assert [r["action"] for r in cli_json("apply", str(tmp_path))] == ["created"]
    assert [r["action"] for r in cli_json("apply", str(tmp_path))] == ["unchanged"]
    spec.write_text(spec.read_text().replace("every: 10m", "every: 15m"))
    # Two new tasks in another file: created together, after the update.
    more = [unique() for _ in range(2)]
    (tmp_path / "more.yaml").write_text(
        "\n---\n".join(f"name: {n}\ncode_file: code.py\ncron: '0 3 * * *'\n" for n in more)
    )
    applied = {r["name"]: r["action"] for r in cli_json("apply", str(tmp_path))}
    assert applied == {name: "updated", more[0]: "created", more[1]: "created"}, applied
    shown = cli_json("show", name)
    assert shown["version"] == 2 and shown["spec"]["every"] == 900.0
    for new in more:
        assert cli_json("show", new)["spec"]["cron"] == "0 3 * * *"


def test_json_output_is_exactly_one_document(platform: LocalPlatform) -> None:
    result = cli("list", "--json")
    assert isinstance(json.loads(result.stdout), list)
    assert result.stderr == ""
