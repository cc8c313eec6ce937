"""Durations and JSON text as awa accepts them, checked before any SQL runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from awa.errors import ValidationError
from awa.validation import check_aware, check_int, check_text, encode_json, to_seconds, valid_utf8


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), (1, 1.0), (2.5, 2.5), (timedelta(minutes=1), 60.0)],
)
def test_to_seconds_normalises(value: float | timedelta | None, expected: float | None) -> None:
    assert to_seconds("delay", value) == expected


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), True, "5", 10**400])
def test_to_seconds_refuses(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        to_seconds("delay", value)  # type: ignore[arg-type]
    assert info.value.field == "delay"


def test_to_seconds_zero_only_when_allowed_and_at_most_a_century() -> None:
    assert to_seconds("delay", 0, allow_zero=True) == 0.0
    with pytest.raises(ValidationError, match="100 years"):
        to_seconds("delay", timedelta(days=366 * 101))


def test_encode_json_is_compact_sorted_and_keeps_unicode() -> None:
    assert encode_json("args", {"b": "é", "a": None}) == '{"a":null,"b":"é"}'
    assert encode_json("args", {}) == "{}"
    assert json.loads(encode_json("args", {"n": [1, 2.5, True]})) == {"n": [1, 2.5, True]}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"x": float("inf")}, "not JSON-serialisable"),
        ({"x": object()}, "not JSON-serialisable"),
        ({1: "a", "b": 2}, "object keys"),
        ({"x": "\ud800"}, "lone surrogate"),
        ({"x": "a\x00b"}, "NUL"),
    ],
)
def test_encode_json_refuses_what_jsonb_cannot_hold(value: object, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        encode_json("args", value)


def test_encode_json_allows_an_escaped_backslash_before_u0000() -> None:
    # The text "\\u0000" (a literal backslash, then "u0000") is not a NUL character.
    assert encode_json("args", {"x": "\\u0000"}) == '{"x":"\\\\u0000"}'


def test_encode_json_refuses_a_cycle() -> None:
    cyclic: list[object] = []
    cyclic.append(cyclic)
    with pytest.raises(ValidationError):
        encode_json("args", cyclic)


def test_text_int_and_datetime_checks() -> None:
    assert check_text("queue", "q", 10) == "q"
    for bad in ("", "   ", "x" * 11, 5):
        with pytest.raises(ValidationError):
            check_text("queue", bad, 10)
    assert check_int("priority", 3, 1, 4) == 3
    for bad_int in (5, False, 2.0):
        with pytest.raises(ValidationError):
            check_int("priority", bad_int, 1, 4)
    aware = datetime(2030, 1, 1, tzinfo=UTC)
    assert check_aware("run_at", aware) is aware
    with pytest.raises(ValidationError, match="naive"):
        check_aware("run_at", datetime(2030, 1, 1))
    assert valid_utf8("é") and not valid_utf8("\udc00")
