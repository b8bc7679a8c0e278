"""Loaded (as Python loads ``sitecustomize``) by every process of the benchmark's
``tuned-2@BENCH_NAGLE=on`` configuration only, through the ``PYTHONPATH`` ``bench._platform``
gives it: the multi-process Prefect API as it was before 2026-12-02, with Nagle's algorithm left
on its connections (``taskscheduler._prefect.server.nodelay``), to measure what that cost side
by side with the platform as it is.
"""

import os

if os.environ.get("BENCH_NAGLE") == "on":
    from taskscheduler._prefect.server import nodelay

    nodelay.no_delay = lambda transport: None
