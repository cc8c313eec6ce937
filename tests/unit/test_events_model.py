"""The event model: kinds, subscriptions and the exact bytes a webhook signs."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from awa.errors import ValidationError
from awa.events.model import EVENT_KINDS, Event, EventKind, check_kinds


def test_kinds_are_the_four_lifecycle_events() -> None:
    assert {"job.failed", "job.rescued", "cron.fired", "cron.missed"} == EVENT_KINDS
    assert EventKind("job.failed") is EventKind.JOB_FAILED


def test_subscriptions_are_none_or_a_non_empty_set_of_known_kinds() -> None:
    assert check_kinds("kinds", None) is None
    assert check_kinds("kinds", ["job.failed", "job.failed"]) == frozenset({"job.failed"})
    for bad, reason in (
        ("job.failed", "not a string"),
        ([], "at least one"),
        (["job.done"], "unknown"),
    ):
        with pytest.raises(ValidationError, match=reason):
            check_kinds("kinds", bad)


def test_body_is_compact_utf8_json_of_the_wire_form() -> None:
    at = datetime(2030, 1, 1, 12, tzinfo=UTC)
    event = Event(42, "job.failed", at, {"kind": "émail"})
    assert event.idempotency_key == "awa-event-42"
    assert (
        event.body()
        == (
            '{"id":42,"kind":"job.failed","occurred_at":"2030-01-01T12:00:00+00:00",'
            '"data":{"kind":"émail"}}'
        ).encode()
    )
    assert json.loads(event.body()) == event.to_json()
