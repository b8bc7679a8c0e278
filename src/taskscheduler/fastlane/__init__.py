"""The fast lane: a worker for trusted short tasks that starts each job on its instant.

A task opts in with ``pool: fast``. ``python -m taskscheduler.fastlane --pool fast`` serves
that pool: it claims scheduled runs a few seconds ahead in bulk, holds each until its exact
scheduled time, runs it in an already warm interpreter and reports states and logs in
batches. Every job stays a full Prefect flow run (states, start/end times, logs, retries).
See ``worker`` for the claim/hold/run/report path and ``settings`` for its knobs.
"""

from __future__ import annotations

from taskscheduler.fastlane.settings import FastLaneSettings, get_fast_settings

__all__ = ["FastLaneSettings", "get_fast_settings"]
