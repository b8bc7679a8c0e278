"""An example of user code referenced by entrypoint (see report.yaml)."""

from __future__ import annotations


def main(items: list[int]) -> int:
    """Add up the items and print the total."""
    total = sum(items)
    print(f"{len(items)} items, total {total}")
    return total
