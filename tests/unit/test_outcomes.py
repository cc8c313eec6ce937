"""What a handler may return or raise instead of a result."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from awa.errors import ValidationError
from awa.model import Callback
from awa.outcomes import Cancel, Outcome, RetryAfter, Snooze, WaitForCallback


def test_snooze_takes_seconds_or_timedelta_and_zero() -> None:
    assert Snooze(timedelta(seconds=90)).delay == 90.0
    assert Snooze(0).delay == 0.0
    assert str(Snooze(5)) == "snooze 5.0s"
    with pytest.raises(ValidationError):
        Snooze(-1)


def test_retry_after_keeps_its_reason() -> None:
    retry = RetryAfter(2, "rate limited")
    assert (retry.delay, retry.reason) == (2.0, "rate limited")
    assert str(retry) == "retry after 2.0s: rate limited"
    assert RetryAfter(1).reason == "retry requested"


def test_cancel_records_why() -> None:
    assert Cancel("duplicate").reason == "duplicate" == str(Cancel("duplicate"))
    assert Cancel().reason == "cancelled by handler"


def test_every_outcome_can_be_raised_from_deep_in_a_handler() -> None:
    callback = Callback("cb", "t", job_id=1, run_lease=1, timeout_at=datetime.now(UTC), resume=True)
    for outcome in (Snooze(1), RetryAfter(1), Cancel(), WaitForCallback(callback)):
        assert isinstance(outcome, Outcome) and isinstance(outcome, Exception)
        with pytest.raises(type(outcome)):
            raise outcome


def test_wait_for_callback_needs_a_registered_callback() -> None:
    callback = Callback(
        "cb-1", "t", job_id=1, run_lease=1, timeout_at=datetime.now(UTC), resume=False
    )
    assert WaitForCallback(callback).callback is callback
    assert "cb-1" in str(WaitForCallback(callback))
    with pytest.raises(ValidationError) as info:
        WaitForCallback("cb-1")  # type: ignore[arg-type]
    assert info.value.field == "callback"
