"""Sandboxes for jobs that run on the platform's own host (the process and fast lanes).

``command`` builds the bubblewrap command line; ``launch`` is what a worker starts for a job:
it turns the worker's environment into the job's (``gate.environment``) and replaces itself
with the sandboxed job.
"""
