"""``awa.insert_template`` without a database: ``Client.params`` validates the options a
batch shares once per combination, and the jobs it builds must be exactly what
``InsertParams(...)`` builds; one job's per-job values never reach the next, and a cached
template never excuses a bad value. The database side (a bad 10,000th job inserts
nothing) is ``tests/client/test_params_template.py``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import awa
from awa.insert_template import Templates
from awa.model import InsertParams, UniqueScope

RUN_AT = datetime(2030, 1, 1, tzinfo=UTC)


def offline_client() -> awa.Client:
    """``params`` needs no connection: a client that never connects."""
    client = awa.Client("postgresql://nobody@localhost/none")

    @client.handler("mail", queue="outbox", timeout=30)
    async def mail(ctx: awa.JobContext) -> None:
        return None

    return client


def expected(client: awa.Client, kind: str, args: Any = None, **options: Any) -> InsertParams:
    """What ``params`` built before templates: the handler's defaults, then the constructor."""
    spec = client.registry.get(kind)
    if options.get("queue") is None:
        options["queue"] = spec.queue if spec else "default"
    if options.get("timeout") is None:
        options["timeout"] = spec.timeout if spec else None
    return InsertParams(kind=kind, args=args, **options)


CASES: list[tuple[str, Any, dict[str, Any]]] = [
    ("mail", {"to": "a"}, {}),
    ("mail", None, {}),
    ("mail", [1, 2], {"queue": "other", "priority": 1, "max_attempts": 3}),
    ("plain", {"i": 1}, {"tags": ["x", "y"], "timeout": 5}),
    ("plain", {"i": 2}, {"tags": ("x", "y"), "timeout": timedelta(seconds=5)}),
    ("plain", {"i": 3}, {"run_at": RUN_AT, "metadata": {"m": 1}}),
    ("plain", {"i": 4}, {"unique_key": "k", "unique_scope": "all"}),
    ("plain", {"i": 5}, {"unique_key": "k", "unique_scope": UniqueScope.QUEUED}),
]


@pytest.mark.parametrize(("kind", "args", "options"), CASES)
def test_params_from_a_template_equal_the_constructors(
    kind: str, args: Any, options: dict[str, Any]
) -> None:
    client = offline_client()
    for _ in range(3):  # the first call makes the template, the others reuse it
        made = client.params(kind, args, **options)
        assert made.__class__ is InsertParams
        assert made.__dict__ == expected(client, kind, args, **options).__dict__
    assert len(client._templates) == 1


def test_one_jobs_values_never_reach_the_next() -> None:
    client = offline_client()
    tags = ["a"]
    first = client.params(
        "plain", {"i": 1}, run_at=RUN_AT, metadata={"m": 1}, unique_key="u", tags=tags
    )
    tags.append("b")  # the caller's list, changed after the call, is not the template's
    second = client.params("plain", {"i": 2}, tags=["a"])
    third = client.params("plain", {"i": 3})
    assert len(client._templates) == 2  # tags ["a"] and no tags
    assert (second.args, second.run_at, second.metadata, second.unique_key) == (
        {"i": 2},
        None,
        None,
        None,
    )
    assert second.tags == ["a"] and second.metadata_json == "{}"
    assert third.__dict__ == expected(client, "plain", {"i": 3}).__dict__
    assert first.args == {"i": 1} and first.metadata == {"m": 1}


def test_templates_are_per_kind_and_follow_the_kinds_handler() -> None:
    client = offline_client()
    assert (client.params("mail").queue, client.params("mail").timeout) == ("outbox", 30.0)
    assert (client.params("late").queue, client.params("late").timeout) == ("default", None)

    # A handler registered after the kind's template was made: its defaults apply from now.
    @client.handler("late", queue="slow", timeout=9)
    async def late(ctx: awa.JobContext) -> None:
        return None

    assert (client.params("late").queue, client.params("late").timeout) == ("slow", 9.0)
    assert client.params("late", queue="q").queue == "q"
    assert client.params("mail").kind == "mail"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"priority": True}, "priority"),  # True == 1: must not match the priority-1 template
        ({"max_attempts": 1.0}, "max_attempts"),
        ({"timeout": True}, "timeout"),
        ({"priority": 9}, "priority"),
        ({"tags": ["ok", ""]}, "tags"),
        ({"tags": "ab"}, "tags"),
        ({"unique_scope": "forever"}, "unique_scope"),
        ({"run_at": datetime(2030, 1, 1)}, "run_at"),
        ({"metadata": [1]}, "metadata"),
        ({"unique_key": ""}, "unique_key"),
    ],
)
def test_a_cached_template_never_excuses_a_bad_option(options: dict[str, Any], field: str) -> None:
    client = offline_client()
    # Templates whose keys a bad value compares equal to (True == 1 == 1.0).
    for valid in ({}, {"priority": 1}, {"max_attempts": 1}, {"timeout": 1}, {"tags": ["ok"]}):
        client.params("plain", **valid)
    with pytest.raises(awa.ValidationError) as caught:
        client.params("plain", {"i": 1}, **options)
    assert caught.value.field == field
    with pytest.raises(awa.ValidationError) as direct:
        expected(client, "plain", {"i": 1}, **options)
    assert str(caught.value) == str(direct.value)


def test_of_several_mistakes_the_constructors_first_is_named() -> None:
    client = offline_client()
    client.params("plain")
    with pytest.raises(awa.ValidationError) as caught:
        client.params("plain", {"x": {1, 2}}, run_at=datetime(2030, 1, 1), tags=[""])
    assert caught.value.field == "run_at"
    # Shared options valid, so the template path decides: each pair of mistakes names the
    # one the constructor names (a review found metadata named before args and the key).
    cases: list[tuple[dict[str, object], dict[str, Any], str]] = [
        ({"a": object()}, {"metadata": {"b": object()}}, "args"),
        ({}, {"metadata": {"b": object()}, "unique_key": ""}, "unique_key"),
        ({"a": object()}, {"metadata": 5}, "metadata"),
    ]
    for args, options, field in cases:
        for build in (client.params, awa.InsertParams):
            with pytest.raises(awa.ValidationError) as caught:
                build("plain", args, **options)
            assert caught.value.field == field, (build, options)


def test_templates_are_bounded() -> None:
    templates = Templates()
    scope = UniqueScope.ACTIVE
    for n in range(Templates.LIMIT * 2 + 5):
        # options made up per job, and kinds made up per job (the all-defaults shortcut)
        by_queue = templates.build(None, "k", n, f"q{n}", 2, None, 25, (), None, None, None, scope)
        by_kind = templates.build(None, f"k{n}", n, None, 2, None, 25, (), None, None, None, scope)
        assert by_queue is not None and by_queue.queue == f"q{n}" and by_queue.args == n
        assert by_kind is not None and by_kind.kind == f"k{n}"
        assert len(templates) <= Templates.LIMIT
        assert len(templates._plain) <= Templates.LIMIT
