"""The json/jsonb codec (``awa.db.connect``) and the row builder never raise for a value
PostgreSQL stored: long integers decode exactly, the rest becomes a marker the runtime
refuses to run. No database needed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from importlib import import_module
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from awa.db.connect import decode_json
from awa.model import JobState, UndecodableJson, UnreadableMetadata
from awa.store.rows import job_from_row
from awa.worker.outcomes import refuse

_decode_jsonb = import_module("awa.db.connect")._decode_jsonb

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@given(JSON)
def test_decode_matches_json_loads(value: Any) -> None:
    for text in (
        json.dumps(value),  # how jsonb prints: ", " and ": "
        json.dumps(value, separators=(",", ":")),
        f" {json.dumps(value)}\n",  # json (not jsonb) keeps whitespace
    ):
        assert decode_json(text) == json.loads(text)
        assert _decode_jsonb(b"\x01" + text.encode()) == json.loads(text)


def test_integers_beyond_the_int_limit_decode_exactly_as_decimal() -> None:
    digits = "9" * 5000
    value = _decode_jsonb(f'\x01{{"n": -{digits}, "m": 7, "f": 1.5}}'.encode())
    assert value == {"n": Decimal("-" + digits), "m": 7, "f": 1.5}
    assert type(value["m"]) is int and str(value["n"]) == "-" + digits


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[" * 5000 + "]" * 5000, "recursion limit"),
        ('{"a": ' + "[" * 5000 + "1" * 5000 + "]" * 5000 + "}", "recursion limit"),
        ('{"a": ', "not valid JSON"),
        ("", "not valid JSON"),
        ("[1] x", "not valid JSON"),
    ],
    ids=["deep", "deep-with-long-int", "truncated", "empty", "trailing-garbage"],
)
def test_undecodable_becomes_a_marker_saying_why(text: str, reason: str) -> None:
    for value in (decode_json(text), _decode_jsonb(b"\x01" + text.encode())):
        assert isinstance(value, UndecodableJson)
        assert reason in repr(value) and reason in str(value)
        assert value.size == len(text)


def test_invalid_utf8_becomes_a_marker() -> None:
    value = _decode_jsonb(b'\x01"\xff"')
    assert isinstance(value, UndecodableJson) and "UTF-8" in value.reason


def _row(**columns: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    row: dict[str, Any] = {
        "id": 7,
        "kind": "k",
        "queue": "default",
        "args": {},
        "priority": 2,
        "attempt": 1,
        "max_attempts": 3,
        "run_at": now,
        "created_at": now,
        "metadata": {},
        "errors": [],
    }
    row.update(columns)
    return row


def test_rows_with_odd_json_shapes_build_a_job_and_are_refused() -> None:
    now = datetime.now(UTC)
    deep = UndecodableJson("nested deeper than Python's recursion limit", 10000)
    assert refuse(job_from_row(_row()), now) is None  # type: ignore[arg-type]

    job = job_from_row(_row(args=deep))  # type: ignore[arg-type]
    decision = refuse(job, now)
    assert decision is not None and decision.state is JobState.FAILED and decision.error
    assert "job 7 (kind 'k') was not run: its args cannot be decoded" in decision.error["message"]

    for metadata in (deep, [1, 2], "text", 5):
        job = job_from_row(_row(metadata=metadata))  # type: ignore[arg-type]
        assert isinstance(job.metadata, UnreadableMetadata) and job.metadata == {}
        decision = refuse(job, now)
        assert decision is not None and decision.error
        assert "metadata cannot be decoded" in decision.error["message"]

    for errors in (deep, 5, {"a": 1}):
        job = job_from_row(_row(errors=errors))  # type: ignore[arg-type]
        assert job.errors[0]["kind"] == "unreadable" and refuse(job, now) is None


def test_text_rows_decode_with_the_same_rules() -> None:
    deep = "[" * 5000 + "]" * 5000
    job = job_from_row(
        _row(args=deep, metadata='{"a": 1}', errors="[]", progress=None, result="1" + "0" * 5000),  # type: ignore[arg-type]
        json_as_text=True,
    )
    assert isinstance(job.args, UndecodableJson) and job.metadata == {"a": 1}
    assert job.result == Decimal("1" + "0" * 5000) and job.progress is None
