"""Contract: a code version's block document holds what Prefect's ``Block`` would write.

``_prefect.versions`` builds a ``TaskCode`` document's data from its fields instead of calling
``Block._to_block_document`` (which regenerates the block's JSON schema for every field, 35 to
80 ms a version). A Prefect upgrade that changes what a block document holds fails here.
"""

from __future__ import annotations

import uuid

import pytest

from taskscheduler import models
from taskscheduler._prefect import mapping
from taskscheduler._prefect.versions import document_data

SPECS = [
    {"name": "inline", "code": "def main(n=1):\n    return n\n", "every": "5m"},
    {
        "name": "entry",
        "entrypoint": "flows/examples.py:hello",
        "cron": "0 9 * * 1-5",
        "timezone": "Europe/Paris",
        "parameters": {"who": "you", "nested": {"a": [1, 2.5, None]}},
        "tags": ["a", "b"],
        "retries": 2,
        "description": "ünïcode ✓",
    },
]


@pytest.mark.parametrize("fields", SPECS, ids=[s["name"] for s in SPECS])
def test_a_code_documents_data_is_what_prefects_block_writes(fields: dict[str, object]) -> None:
    block = mapping.version_block(models.build_spec(fields), 3)
    theirs = block._to_block_document(
        name="x-v3", block_schema_id=uuid.uuid4(), block_type_id=uuid.uuid4(), include_secrets=True
    )
    assert document_data(block) == theirs.model_dump(mode="json")["data"]
