"""Prometheus metrics of the API: requests by route and status, latency, jobs by state.

A registry per app (not the process-global one), so tests can build several apps. Jobs by
state are read from Prefect when scraped, never copied: Prefect's tables are the truth.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from taskscheduler import models
from taskscheduler.services import monitoring

log = logging.getLogger("taskscheduler.api")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The API's metrics and their registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "taskscheduler_api_requests",
            "API requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "taskscheduler_api_request_duration_seconds",
            "API request latency by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.jobs = _JobsByState()
        self.registry.register(self.jobs)
        # Platform health (taskscheduler.services.monitoring): refreshed by the /metrics route.
        self.platform = monitoring.PlatformCollector()
        self.registry.register(self.platform)


class _JobsByState(Collector):
    """``taskscheduler_jobs{state=...}``, from the counts the app refreshes before a scrape."""

    def __init__(self) -> None:
        self.counts: dict[models.JobState, int] = {}

    def collect(self) -> Iterator[Any]:
        family = GaugeMetricFamily(
            "taskscheduler_jobs", "Jobs (flow runs of tasks) by state.", labels=["state"]
        )
        for state, count in self.counts.items():
            family.add_metric([state.value], count)
        yield family
