"""The job gateway: the one door from a job to the platform.

A job never holds the platform's secrets. Whatever starts it (the process and docker lanes'
workers) gives it a credential for its own run (``credential``) and an environment without the
platform's settings (``environment``); the job's Prefect client talks to this gateway through
a unix socket mounted into its sandbox or container, and the gateway (``proxy``) forwards only
the calls a flow run makes about itself (``rules``), auditing every refusal (``refusals``).
"""
