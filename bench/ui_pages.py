"""How the web page's task list holds up as tasks pile up: ``python -m bench.ui_pages``.

    python -m bench.ui_pages --tasks 10000             # its own throwaway platform
    python -m bench.ui_pages --api URL --token TOKEN   # a running one (creates tasks there)

Creates tasks through the REST API (one in ten with an hourly schedule, so next runs exist)
and, each time the count reaches a checkpoint, times the pages a person opens: the first and
the last page of the list, a search, the list's live fragment, and ``GET /v1/tasks``. Each is
fetched ``--repeat`` times; the table gives the median and the 90th percentile in ms, side by
side for every checkpoint, so the growth with the task count reads off one run. It asserts
nothing: it reports (``bench/results/ui_pages.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from taskscheduler.api.schemas import encode_cursor

CODE = "def main() -> None:\n    pass\n"
PAGE = 50
RESULTS = Path(__file__).parent / "results"


@contextlib.contextmanager
def target(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    """The API address and an admin token: the given ones, or a platform of our own."""
    if args.api:
        yield args.api.rstrip("/"), args.token
        return
    from bench._platform import platform

    with (
        tempfile.TemporaryDirectory(prefix="bench-ui-") as work,
        platform(Path(work), topology="stock", redis_db=9) as p,
    ):
        yield p.service_api_url, p.credentials.admin_token.get_secret_value()


async def create(client: httpx.AsyncClient, first: int, last: int, parallel: int) -> float:
    """Create tasks ``first`` .. ``last - 1``; the seconds it took."""
    gate = asyncio.Semaphore(parallel)

    async def one(i: int) -> None:
        body: dict[str, Any] = {"name": f"page-{i:05d}", "code": CODE}
        if i % 10 == 0:
            body["every"] = "1h"
        async with gate:
            response = await client.post("/v1/tasks", json=body)
        if response.status_code not in (201, 409):
            raise RuntimeError(f"create page-{i:05d}: {response.status_code} {response.text}")

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(first, last)))
    return time.perf_counter() - started


async def timed(client: httpx.AsyncClient, path: str, repeat: int) -> dict[str, float]:
    """Median and 90th percentile of ``repeat`` sequential fetches, in ms."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = await client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code}")
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 1),
        "p90_ms": round(samples[int(0.9 * (len(samples) - 1))], 1),
    }


async def measure(api: str, token: str, checkpoints: list[int], repeat: int) -> dict[str, Any]:
    report: dict[str, Any] = {"checkpoints": [], "repeat": repeat}
    async with httpx.AsyncClient(
        base_url=api,
        headers={"Authorization": f"Bearer {token}"},
        cookies={"tasks_session": token},
        timeout=300,
    ) as client:
        made = 0
        for count in checkpoints:
            seconds = await create(client, made, count, parallel=8)
            rate = (count - made) / seconds if seconds else 0.0
            made = count
            last = encode_cursor(max(count - PAGE, 0))
            pages = {
                "list first page": "/ui/tasks",
                "list last page": f"/ui/tasks?cursor={last}",
                "search": f"/ui/tasks?search=page-{count // 2:05d}",
                "live fragment": "/ui/tasks?fragment=1",
                "GET /v1/tasks": "/v1/tasks?limit=50",
            }
            timings = {name: await timed(client, path, repeat) for name, path in pages.items()}
            report["checkpoints"].append(
                {"tasks": count, "created_per_s": round(rate, 1), "pages": timings}
            )
            print(f"{count} tasks ({rate:.1f} created/s): {json.dumps(timings)}", flush=True)
    report["loadavg"] = os.getloadavg()
    return report


def table(report: dict[str, Any]) -> str:
    rows = report["checkpoints"]
    names = list(rows[0]["pages"])
    head = "| page (median / p90 ms) | " + " | ".join(f"{r['tasks']} tasks" for r in rows) + " |"
    lines = [head, "|---" * (len(rows) + 1) + "|"]
    for name in names:
        cells = [f"{r['pages'][name]['median_ms']} / {r['pages'][name]['p90_ms']}" for r in rows]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| tasks created per s | " + " | ".join(str(r["created_per_s"]) for r in rows))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--api")
    parser.add_argument("--token")
    args = parser.parse_args(argv)
    checkpoints = sorted({n for n in (100, 1000, args.tasks) if n <= args.tasks})
    with target(args) as (api, token):
        report = asyncio.run(measure(api, token, checkpoints, args.repeat))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ui_pages.json").write_text(json.dumps(report, indent=2))
    print(table(report))
    print(f"load average at the end: {report['loadavg']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
