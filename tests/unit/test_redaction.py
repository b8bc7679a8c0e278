"""Secret values kept out of a job's log records and error messages (both lanes use this)."""

from __future__ import annotations

import logging
import os

import pytest

from taskscheduler.runtime import loading, redaction


def test_values_are_replaced_longest_first_and_empty_ones_ignored() -> None:
    redact = redaction.redactor(["abc", "abcdef", ""])
    assert redact("x abcdef y abc") == "x *** y ***"
    assert redaction.redactor(["", ""]) is redaction.unchanged


def test_an_error_carrying_a_secret_is_replaced_without_its_chain() -> None:
    redact = redaction.redactor(["hunter2"])
    with pytest.raises(RuntimeError) as caught, redaction.redacted_errors(redact):
        raise ValueError("password hunter2 refused")
    assert str(caught.value) == "ValueError: password *** refused"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_an_error_without_a_secret_passes_unchanged() -> None:
    with pytest.raises(KeyError), redaction.redacted_errors(redaction.redactor(["hunter2"])):
        raise KeyError("other")


def test_log_records_are_redacted_only_within_the_block(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test_redaction")
    with caplog.at_level(logging.INFO, logger="test_redaction"):
        with redaction.redacted_log_records(redaction.redactor(["s3cret"])):
            logger.info("token %s", "s3cret")
        logger.info("token %s", "s3cret")
    assert [r.getMessage() for r in caplog.records] == ["token ***", "token s3cret"]


def test_the_secret_environment_sets_and_removes_the_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TEST_REDACTION_SECRET", raising=False)
    with loading.secret_values_environment({"TEST_REDACTION_SECRET": "v4lue"}) as redact:
        assert os.environ["TEST_REDACTION_SECRET"] == "v4lue"
        assert redact("is v4lue") == "is ***"
    assert "TEST_REDACTION_SECRET" not in os.environ
