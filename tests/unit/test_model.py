"""The job model without a database: states, unique scopes, insert validation, markers."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from awa.errors import ValidationError
from awa.model import (
    MAX_KIND_LENGTH,
    MAX_QUEUE_LENGTH,
    TERMINAL_STATES,
    Callback,
    InsertParams,
    Job,
    JobState,
    UndecodableJson,
    UniqueScope,
    UnreadableMetadata,
    hash_callback_token,
    new_callback_token,
    parse_state,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_parse_state_accepts_values_and_names_the_valid_ones() -> None:
    assert parse_state("waiting_external") is JobState.WAITING_EXTERNAL
    with pytest.raises(ValidationError) as info:
        parse_state("done")
    assert info.value.field == "state"
    assert "completed" in info.value.reason and "waiting_external" in info.value.reason


def test_terminal_states_are_exactly_the_finished_ones() -> None:
    assert {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED} == TERMINAL_STATES


def test_unique_scopes_nest() -> None:
    queued = set(UniqueScope.QUEUED.states())
    active = set(UniqueScope.ACTIVE.states())
    every = set(UniqueScope.ALL.states())
    assert queued == {"scheduled", "available", "retryable"}
    assert active == queued | {"running", "waiting_external"}
    assert every == {s.value for s in JobState}


def test_job_as_dict_is_json_ready() -> None:
    job = Job(
        id=7,
        kind="email",
        queue="default",
        args={"to": "a"},
        state=JobState.RUNNING,
        priority=2,
        attempt=1,
        max_attempts=3,
        run_at=NOW,
        created_at=NOW - timedelta(seconds=5),
    )
    out = job.as_dict()
    assert out["state"] == "running" and out["run_at"] == NOW.isoformat()
    assert out["attempted_at"] is None and out["args"] == {"to": "a"}
    assert set(out) == {f.name for f in dataclasses.fields(Job)}


def test_insert_params_encode_args_and_metadata_once() -> None:
    params = InsertParams("email", args={"b": 1, "a": [1, 2]}, metadata={"k": "v"})
    assert params.args_json == '{"a":[1,2],"b":1}'
    assert params.metadata_json == '{"k":"v"}'
    assert InsertParams("email").args_json == "{}"
    assert params.unique_states is None


def test_insert_params_unique_scope_from_text() -> None:
    params = InsertParams("email", unique_key="k", unique_scope="queued")
    assert params.unique_scope is UniqueScope.QUEUED
    assert params.unique_states == ["scheduled", "available", "retryable"]


def test_insert_params_timeout_normalised_to_seconds() -> None:
    assert InsertParams("k", timeout=timedelta(minutes=2)).timeout_seconds == 120.0
    assert InsertParams("k").timeout_seconds is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": ""}, "kind"),
        ({"kind": "x" * (MAX_KIND_LENGTH + 1)}, "kind"),
        ({"kind": "a\x00b"}, "kind"),
        ({"kind": "\ud800"}, "kind"),
        ({"kind": "k", "queue": "q" * (MAX_QUEUE_LENGTH + 1)}, "queue"),
        ({"kind": "k", "priority": 0}, "priority"),
        ({"kind": "k", "priority": True}, "priority"),
        ({"kind": "k", "max_attempts": 1001}, "max_attempts"),
        ({"kind": "k", "run_at": datetime(2030, 1, 1)}, "run_at"),
        ({"kind": "k", "run_at": datetime.max.replace(tzinfo=UTC)}, "run_at"),
        ({"kind": "k", "tags": "urgent"}, "tags"),
        ({"kind": "k", "tags": ["ok", ""]}, "tags"),
        ({"kind": "k", "metadata": [1]}, "metadata"),
        ({"kind": "k", "timeout": -1}, "timeout"),
        ({"kind": "k", "unique_scope": "forever"}, "unique_scope"),
        ({"kind": "k", "args": {1: "a", "1": "b"}}, "args"),
        ({"kind": "k", "args": {"x": float("nan")}}, "args"),
    ],
)
def test_insert_params_refuse_bad_values_naming_the_field(
    kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        InsertParams(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_insert_params_accept_any_aware_timezone() -> None:
    run_at = datetime(2030, 1, 1, 9, tzinfo=timezone(timedelta(hours=9)))
    assert InsertParams("k", run_at=run_at).run_at == run_at


def test_a_dataclass_subclass_is_validated_too() -> None:
    @dataclasses.dataclass(frozen=True)
    class Email(InsertParams):
        pass

    assert Email(kind="email", args={"a": 1}).args_json == '{"a":1}'
    with pytest.raises(ValidationError):
        Email(kind="")


def test_callback_tokens_are_random_and_stored_hashed() -> None:
    a, b = new_callback_token(), new_callback_token()
    assert a != b and len(a) >= 43
    assert hash_callback_token(a) == hashlib.sha256(a.encode()).digest()
    callback = Callback("id", a, job_id=1, run_lease=1, timeout_at=NOW, resume=False)
    assert a not in repr(callback)


def test_unreadable_values_say_why() -> None:
    marker = UndecodableJson("not valid JSON", 12)
    assert repr(marker) == str(marker) == "<undecodable JSON: not valid JSON (12 characters)>"
    metadata = UnreadableMetadata("stored metadata is [1]")
    assert metadata == {} and metadata.reason == "stored metadata is [1]"
    assert "unreadable metadata" in repr(metadata)


class _Lying(str):
    """Hashes and compares like a valid name, yet is another type (and longer than any
    queue may be): only an exact ``str`` may skip the check."""

    def __hash__(self) -> int:
        return hash("mail")

    def __eq__(self, other: object) -> bool:
        return other == "mail"

    def __len__(self) -> int:
        return MAX_QUEUE_LENGTH + 1


def test_a_name_accepted_once_is_still_checked_for_what_it_is() -> None:
    """Kinds and queues are checked once per distinct name on the bulk path; a value that
    merely compares equal to a remembered name is checked in full."""
    InsertParams("k", queue="mail")
    with pytest.raises(ValidationError, match="queue"):
        InsertParams("k", queue=_Lying("mail" + "x" * MAX_QUEUE_LENGTH))
    with pytest.raises(ValidationError, match="priority"):
        InsertParams("k", queue="mail", priority=True)  # a bool is not a priority
    with pytest.raises(ValidationError, match="max_attempts"):
        InsertParams("k", queue="mail", max_attempts=0)


def test_names_made_up_per_job_do_not_grow_the_accepted_set_forever() -> None:
    from awa.model import _ACCEPTED_KINDS

    for i in range(_ACCEPTED_KINDS.LIMIT + 10):
        InsertParams(f"kind-{i}")
    assert len(_ACCEPTED_KINDS) <= _ACCEPTED_KINDS.LIMIT
