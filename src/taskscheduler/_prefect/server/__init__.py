"""What the platform adds to the Prefect server itself: set-based orchestration of fast-lane
runs (``fastpath``), served by its API processes (``app``, ``routes``, ``__main__``)."""
