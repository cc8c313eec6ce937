"""Hostile cron declarations (``client.schedule(...)``): fuzzed expressions, timezones and
options, then what the leader does with them on a real PostgreSQL.

A declaration is validated when made, so the contract is: ``schedule()`` either raises a
typed ``awa.ValidationError`` naming a bad field, or the schedule can be published
(``cron_sync``) and every fire can be inserted as a job. A declaration accepted now and
refused at 3 a.m. in the leader is the bug this file looks for. The leader side must also
hold: one bad schedule (declared by a buggy deploy or written by hand) may not stop the
runtime from starting nor keep the other schedules from firing.

A bug found here gets a focused strict xfail (``reason="BUG: ..."``) and, until it is
fixed, a predicate that keeps its inputs out of the fuzz.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import awa
from awa.config import MaintenanceConfig
from awa.cron import CronTable
from awa.maintenance import BranchContext
from awa.maintenance.branches.cron_evaluate import CronEvaluate
from awa.maintenance.branches.cron_sync import CronSync, declarations_of
from awa.model import InsertParams
from awa.store import Store
from awa.validation import encode_json

T0 = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)


def examples(n: int) -> int:
    """``n`` examples in CI; the loaded profile's count under HYPOTHESIS_PROFILE=long."""
    return max(n, settings().max_examples) if os.environ.get("HYPOTHESIS_PROFILE") else n


# ------------------------------------------------------------------------- strategies

SQLISH = ["'; DROP TABLE awa.cron_schedules; --", "x' OR '1'='1", "$1", "NULL", "%s%n"]
surrogates = st.characters(categories=["Cs"])
hostile_text = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=st.one_of(st.characters(), surrogates, st.just("\x00")), max_size=12),
    st.sampled_from([*SQLISH, "", " ", "k" * 201]),
)
wrong_types = st.sampled_from([None, 0, -1, 99, 1.5, True, b"x", ["l"], {"d": 1}, object()])
numbers = st.one_of(
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([10**400, -(10**400)]),
)

cron_atoms = st.one_of(
    st.sampled_from(["*", "?", "L", "W", "#", "/", ",", "-", "MON", "jan", "LW", "5L", "1#5"]),
    st.integers(-3, 70).map(str),
    st.sampled_from(["99999999999999999999", "0x10", "½", "\x00", "\ud800"]),
)
cron_fields = st.lists(cron_atoms, min_size=1, max_size=4).map("".join)
small = st.integers(0, 23) | st.integers(0, 61)
plausible_fields = st.one_of(
    st.just("*"),
    small.map(str),
    st.integers(1, 61).map(lambda k: f"*/{k}"),
    st.tuples(small, small).map(lambda p: f"{p[0]}-{p[1]}"),
    st.tuples(small, small).map(lambda p: f"{p[0]},{p[1]}"),
    st.tuples(small, small, st.integers(1, 30)).map(lambda p: f"{p[0]}-{p[1]}/{p[2]}"),
    st.sampled_from(["MON-FRI", "sun", "JAN", "L", "15W", "5#2", "?"]),
)
expressions = st.one_of(
    st.lists(plausible_fields, min_size=5, max_size=6).map(" ".join),
    st.lists(cron_fields, min_size=4, max_size=7).map(" ".join),
    st.sampled_from(
        ["* * * * *", "*/10 * * * * *", "0 3 * * *", "0 0 30 2 *", "@daily", "0 2 * * SUN"]
    ),
    hostile_text,
    wrong_types,
)
timezones = st.one_of(
    st.sampled_from(
        ["UTC", "Europe/Berlin", "America/St_Johns", "Asia/Kathmandu", "Pacific/Chatham"]
    ),
    st.sampled_from(["../etc/passwd", "/etc/localtime", "Mars/Olympus", "x" * 300, "."]),
    hostile_text,
    wrong_types,
)
durations = st.one_of(numbers, st.timedeltas(), wrong_types)

#: option -> (valid values, hostile values); hostile draws may happen to be valid.
OPTIONS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "args": (st.dictionaries(st.text(max_size=5), st.integers(), max_size=3), numbers),
    "queue": (st.sampled_from(["default", "reports"]), hostile_text | wrong_types),
    "priority": (st.integers(1, 4), numbers | wrong_types),
    "max_attempts": (st.integers(1, 1000), numbers | wrong_types),
    "timezone": (st.sampled_from(["UTC", "Europe/Berlin", "Asia/Kathmandu"]), timezones),
    "misfire": (
        st.sampled_from(["skip", "catchup_all", "catchup_latest", "catchup", "compress"]),
        hostile_text | wrong_types,
    ),
    "catchup_window": (st.floats(0, 86400), durations),
    "max_catchup": (st.integers(1, 10_000), numbers | wrong_types),
    "overlap": (st.sampled_from(["allow", "skip", "buffer_one"]), hostile_text | wrong_types),
    "paused": (st.booleans(), wrong_types),
    "miss_tolerance": (st.floats(0, 3600), durations),
    "tags": (st.lists(st.sampled_from(["a", "b"]), max_size=2), hostile_text | wrong_types),
    "metadata": (st.dictionaries(st.text(max_size=5), st.booleans(), max_size=2), wrong_types),
}


@st.composite
def declarations(draw: st.DrawFn) -> tuple[Any, Any, Any, dict[str, Any]]:
    """(name, expression, kind, options), at most two of them hostile."""
    roles = ["name", "expression", "kind", *OPTIONS]
    hostile = draw(st.sets(st.sampled_from(roles), max_size=2))
    name = draw(hostile_text | wrong_types) if "name" in hostile else draw(st.sampled_from(["n"]))
    expression = draw(expressions) if "expression" in hostile else "*/10 * * * * *"
    kind = draw(hostile_text | wrong_types) if "kind" in hostile else "report"
    options = {}
    for option, (valid, bad) in OPTIONS.items():
        if option in hostile:
            options[option] = draw(bad)
        elif draw(st.booleans()):
            options[option] = draw(valid)
    return name, expression, kind, options


# ----------------------------------------------------------------------------- oracle


def _storable_text(value: Any) -> bool:
    return (
        isinstance(value, str)
        and "\x00" not in value
        and not any("\ud800" <= c <= "\udfff" for c in value)
    )


def unusable(name: Any, kind: Any, options: Mapping[str, Any]) -> str | None:
    """The field that makes a declaration unusable by the leader (the job a fire would
    build, the catch-up figures, the name), or None: schedule() must refuse those."""
    if not _storable_text(name):
        return "name"
    try:  # the job fields are not validated at declaration: a fire would build this
        InsertParams(
            kind=kind,
            args=options.get("args"),
            # None is the handler's queue, resolved when published (tests/cron/test_cron_queue.py)
            queue="default" if options.get("queue") is None else options["queue"],
            priority=options.get("priority", 2),
            max_attempts=options.get("max_attempts", 25),
            tags=options.get("tags", ()),
            metadata=options.get("metadata"),
        )
    except awa.ValidationError as exc:
        return exc.field
    for field in ("catchup_window", "miss_tolerance"):
        if field in options and options[field] is None:
            return field
        value = options.get(field)
        if isinstance(value, float) and not math.isfinite(value):
            return field
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 1e308:
            return field
    if "max_catchup" in options and not isinstance(options["max_catchup"], int):
        return "max_catchup"
    return None


def publishable_and_fireable(client: awa.Client, schedule: Any) -> None:
    """What the leader will do with an accepted schedule, without a database: publish its
    declaration as strict JSON, compute its next fire, and build the job of a fire."""
    [row] = declarations_of(client.cron)
    encode_json("declaration", row)  # strict JSON, no NUL, no lone surrogate
    for value in (row["name"], row["kind"], row["queue"], row["expression"], row["timezone"]):
        assert _storable_text(value)
    assert schedule.cron.next_after(T0) > T0
    InsertParams(
        kind=row["kind"],
        args=row["args"],
        queue=row["queue"],
        priority=row["priority"],
        max_attempts=row["max_attempts"],
        tags=row["tags"],
        metadata=row["metadata"],
    )


ALL_FIELDS = {"name", "expression", "kind", "timezone", *OPTIONS}


@settings(max_examples=examples(400), deadline=None)
@given(declaration=declarations())
def test_fuzzed_declaration_is_refused_when_made_or_works_in_the_leader(
    declaration: tuple[Any, Any, Any, dict[str, Any]],
) -> None:
    name, expression, kind, options = declaration
    bad = unusable(name, kind, options)
    client = awa.Client("postgresql://unused@127.0.0.1:1/x")
    try:
        schedule = client.schedule(name, expression, kind, **options)
    except awa.ValidationError as exc:
        event(f"refused: {exc.field}")
        assert exc.field in ALL_FIELDS, exc
        return
    assert bad is None, f"accepted although {bad!r} is unusable: {declaration!r}"
    event("accepted")
    publishable_and_fireable(client, schedule)


@settings(max_examples=examples(300), deadline=None)
@given(
    expression=expressions,
    timezone=st.sampled_from(["UTC", "Europe/London", "America/Sao_Paulo"]) | timezones,
)
def test_fuzzed_expressions_and_timezones_never_crash(expression: Any, timezone: Any) -> None:
    """croniter and zoneinfo on arbitrary text: a typed refusal, or an expression whose
    fires are increasing aware instants."""
    table = CronTable()
    try:
        schedule = table.add("s", expression, "k", timezone=timezone)
    except awa.ValidationError as exc:
        event(f"refused: {exc.field}")
        assert exc.field in {"expression", "timezone"}
        return
    event("accepted")
    fires = schedule.cron.fires_between(T0, T0 + timedelta(days=400), 5)
    assert fires == sorted(fires) and all(f.tzinfo is not None for f in fires)


# ---------------------------------------------------------- focused: bugs found by the fuzz

UNVALIDATED = [
    ("queue", {"queue": ""}),
    ("queue", {"queue": "q\x00"}),
    ("priority", {"priority": 99}),
    ("priority", {"priority": "1"}),
    ("max_attempts", {"max_attempts": 0}),
    ("args", {"args": {"x": float("nan")}}),
    ("args", {"args": {"x": "\ud800"}}),
    ("args", {"args": {"x": "\x00"}}),
    ("tags", {"tags": None}),
    ("tags", {"tags": "abc"}),
    ("metadata", {"metadata": 5}),
    ("catchup_window", {"catchup_window": float("nan")}),
    ("catchup_window", {"catchup_window": float("inf")}),
    ("catchup_window", {"catchup_window": 10**400}),
    ("miss_tolerance", {"miss_tolerance": float("nan")}),
    ("miss_tolerance", {"miss_tolerance": None}),
    ("catchup_window", {"catchup_window": None}),
    ("max_catchup", {"max_catchup": "5"}),
    ("max_catchup", {"max_catchup": 5.5}),
    ("name", {"name": "n\x00"}),
    ("name", {"name": "\ud800"}),
    ("kind", {"kind": "k\x00"}),
    ("kind", {"kind": "k" * 201}),
    ("kind", {"kind": "\udcff"}),
]


@pytest.mark.parametrize(
    ("field", "options"), UNVALIDATED, ids=[f"{f}-{i}" for i, (f, _) in enumerate(UNVALIDATED)]
)
def test_declaration_is_refused_when_made(field: str, options: dict[str, Any]) -> None:
    options = dict(options)
    name = options.pop("name", "s")
    kind = options.pop("kind", "report")
    client = awa.Client("postgresql://unused@127.0.0.1:1/x")
    with pytest.raises(awa.ValidationError) as caught:
        client.schedule(name, "* * * * *", kind, **options)
    assert caught.value.field == field


# ------------------------------------------------------------------ the leader's side


@pytest.fixture
async def mstore(database_url: str) -> AsyncIterator[Store]:
    store = await Store.open(database_url, max_size=4)
    yield store
    await store.close()


def ctx_for(store: Store, clock: awa.Clock) -> BranchContext:
    return BranchContext(store=store, clock=clock, config=MaintenanceConfig())


async def fired(raw: asyncpg.Connection) -> dict[str, int]:
    rows = await raw.fetch(
        "SELECT metadata -> 'awa.cron' ->> 'schedule' AS s, count(*) AS n FROM awa.all_jobs"
        " GROUP BY 1"
    )
    return {str(r["s"]): int(r["n"]) for r in rows}


async def test_sql_looking_declarations_are_published_and_fired_verbatim(
    mstore: Store, raw: asyncpg.Connection
) -> None:
    clock = awa.FakeClock(T0)
    table = CronTable()
    for i, text in enumerate(SQLISH):
        table.add(text, "*/10 * * * * *", text, args={text: [text]}, queue=f"q{i}{text}"[:100])
    await CronSync(table, "test").run_once(ctx_for(mstore, clock))
    clock.advance(10.5)
    result = await CronEvaluate().run_once(ctx_for(mstore, clock))
    assert result.rows["fired"] == len(SQLISH)
    for i, text in enumerate(SQLISH):
        row = await raw.fetchrow(
            "SELECT kind, queue, args FROM awa.all_jobs"
            " WHERE metadata -> 'awa.cron' ->> 'schedule' = $1",
            text,
        )
        assert row is not None
        assert (row["kind"], row["queue"]) == (text, f"q{i}{text}"[:100])
        assert json.loads(row["args"]) == {text: [text]}
    assert await raw.fetchval("SELECT to_regclass('awa.cron_schedules') IS NOT NULL")


async def test_one_poisoned_schedule_does_not_stop_the_others(
    mstore: Store, raw: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    clock = awa.FakeClock(T0)
    table = CronTable()
    table.add("a_poisoned", "*/10 * * * * *", "report")
    table.add("b_healthy", "*/10 * * * * *", "report")
    await CronSync(table, "test").run_once(ctx_for(mstore, clock))
    # A row no valid declaration produces (written by an older, buggier deploy or by hand).
    await raw.execute("UPDATE awa.cron_schedules SET priority = 99 WHERE name = 'a_poisoned'")
    evaluate = CronEvaluate()
    with caplog.at_level(logging.ERROR, logger="awa.cron"):
        for expected in (1, 2):
            clock.advance(10.5)
            result = await evaluate.run_once(ctx_for(mstore, clock))
            assert result.rows["invalid"] == 1
            assert await fired(raw) == {"b_healthy": expected}
    reports = [r for r in caplog.records if "a_poisoned" in r.getMessage()]
    assert len(reports) == 1 and "priority" in reports[0].getMessage()  # once, naming why


async def test_bad_declaration_is_refused_or_does_not_stop_the_runtime(
    database_url: str, raw: asyncpg.Connection
) -> None:
    client = awa.Client(database_url)
    client.schedule("healthy", "* * * * *", "report")
    try:
        client.schedule("broken", "* * * * *", "report", args={"x": float("nan")})
    except awa.ValidationError:
        return  # refused when declared: the runtime never sees it
    config = awa.RuntimeConfig(queues={})
    async with client, awa.Runtime(client, config, run_maintenance=False):
        names = await raw.fetch("SELECT name FROM awa.cron_schedules")
    assert "healthy" in {r["name"] for r in names}
