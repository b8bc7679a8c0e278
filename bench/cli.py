"""``python -m bench.cli``: how long the ``tasks`` CLI takes, beside ``prefect``, in one run.

Each command runs ``--rounds`` times, the commands interleaved round by round so that drift of
the machine hits them alike; the report gives each one's median and spread of wall-clock time
and CPU time (the child's user + system), and the ratio of the medians to ``prefect --help``.

- ``tasks --help`` and ``prefect --help``: start-up alone;
- ``tasks list`` with 50 tasks on a throwaway platform (its own database and ports), through the
  REST API as the platform's admin token, and ``tasks list --json``.

Targets (issue 16): ``tasks --help`` ≤ 0.3 s, ``tasks list`` (50 tasks) ≤ 1 s. Asserts nothing:
it reports.

``--baseline DIR``: another checkout's CLI too (``DIR/src`` first on the path, this virtualenv),
interleaved with the rest, for a before/after in one run. The row ``GET /v1/tasks`` is the API's
answer to the same listing, timed in this process: what of ``tasks list`` is the server's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import _platform
from taskscheduler.client import Client

BIN = Path(sys.executable).parent
RESULTS = Path(__file__).parent / "results"
TASKS = 50
HELLO = "def main():\n    return 'hello'\n"


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one run of ``command`` (which must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=120)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def summary(samples: list[tuple[float, float]]) -> dict[str, float]:
    walls = sorted(w for w, _ in samples)
    cpus = sorted(c for _, c in samples)
    return {
        "wall_median_s": round(statistics.median(walls), 3),
        "wall_min_s": round(walls[0], 3),
        "wall_max_s": round(walls[-1], 3),
        "cpu_median_s": round(statistics.median(cpus), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cli", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--baseline", type=Path, help="another checkout to time beside this one")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    print("== starting a throwaway platform for `tasks list`", flush=True)
    with _platform.platform(work / "state", topology="stock", redis_db=0) as p:
        token = p.credentials.admin_token.get_secret_value()
        env = {
            **os.environ,
            "TASKS_URL": p.service_api_url,
            "TASKS_TOKEN": token,
            "XDG_CONFIG_HOME": str(work / "config"),  # no saved login interferes
        }
        with Client(p.service_api_url, token) as api:
            for i in range(TASKS):
                api.create({"name": f"bench-cli-{i:02d}", "code": HELLO, "every": "1h"})
            assert len(api.list()) >= TASKS
        commands = {
            "tasks --help": [str(BIN / "tasks"), "--help"],
            "prefect --help": [str(BIN / "prefect"), "--help"],
            f"tasks list ({TASKS} tasks)": [str(BIN / "tasks"), "list"],
            f"tasks list --json ({TASKS} tasks)": [str(BIN / "tasks"), "list", "--json"],
        }
        envs = {name: env for name in commands}
        if args.baseline is not None:
            before = {**env, "PYTHONPATH": str(args.baseline.resolve() / "src")}
            launch = [
                sys.executable,
                "-c",
                "import sys; from taskscheduler.cli import main; main()",
            ]
            for name, argv in (
                ("tasks --help", ["--help"]),
                (f"tasks list ({TASKS} tasks)", ["list"]),
            ):
                commands[f"{name} [baseline]"] = [*launch, *argv]
                envs[f"{name} [baseline]"] = before
        for name, command in commands.items():
            timed(command, envs[name])  # warm the page cache once, unmeasured
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        answers = "GET /v1/tasks (the API's part)"
        samples[answers] = []
        with Client(p.service_api_url, token) as api:
            for _ in range(args.rounds):
                for name, command in commands.items():
                    samples[name].append(timed(command, envs[name]))
                started = time.perf_counter()
                api.list()
                samples[answers].append((time.perf_counter() - started, 0.0))
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rounds": args.rounds,
        "load": [round(x, 2) for x in os.getloadavg()],
        "commands": {name: summary(s) for name, s in samples.items()},
    }
    baseline = report["commands"]["prefect --help"]["wall_median_s"]
    print(f"\n{'command':<32} {'median':>8} {'min':>7} {'max':>7} {'cpu':>7} {'/prefect':>9}")
    for name, figures in report["commands"].items():
        ratio = figures["wall_median_s"] / baseline
        figures["ratio_to_prefect_help"] = round(ratio, 2)
        print(
            f"{name:<32} {figures['wall_median_s']:>7.3f}s {figures['wall_min_s']:>6.3f}s"
            f" {figures['wall_max_s']:>6.3f}s {figures['cpu_median_s']:>6.3f}s {ratio:>8.2f}x"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "cli-latest.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
