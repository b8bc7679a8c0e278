"""The Prefect wing: the only part of the package, besides the job runtime, that speaks to Prefect.

``gateway`` maps tasks to deployments and jobs to flow runs through Prefect's client (its parts:
``deployments``, ``versions``, ``flow_runs``; the mapping itself in ``mapping``); ``rest``
is the fast lane's plain-JSON client of the few bulk calls it makes; ``workers`` holds the
Prefect workers of the process and docker lanes, which start every job through the job
gateway with a credential for its own run. This ``__init__`` imports nothing, so a module that
needs only ``rest`` does not load Prefect.
"""
