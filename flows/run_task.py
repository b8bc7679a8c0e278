"""The generic flow's entrypoint: every deployment of a task points here.

The flow itself lives in the package (``taskscheduler.runtime.flow``), so this file is only the
path Prefect loads it by.
"""

from __future__ import annotations

from taskscheduler.runtime.flow import run_task

__all__ = ["run_task"]
