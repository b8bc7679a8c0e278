"""What runs inside a job: its door to the platform (``door``)."""
