"""Hostile input to the public insert API, fuzzed with hypothesis against a real PostgreSQL.

``Client.insert``, ``Client.params`` and ``Client.insert_many`` get huge and deeply nested
payloads, NUL characters, lone surrogates, SQL-looking text, negative and enormous numbers,
naive and aware datetimes and wrong types, field by field. An independent oracle decides
from the inputs alone whether the call must be refused (and which fields may be named);
then every example ends in one of two ways, and nothing else:

- a typed ``awa.ValidationError`` naming one of the bad fields, with the row count
  unchanged (for ``insert_many``: no partial batch);
- a job read back from the database equal to what was asked for (JSON compared as JSON:
  PostgreSQL's ``jsonb`` keeps numbers as decimals, so ``1e300`` comes back as the integer
  it denotes).

A bug found here gets a focused strict xfail (``reason="BUG: ..."``) and, until it is
fixed, a predicate that keeps its inputs out of the fuzz. Builds on
``test_jobs_bad_input.py`` (hand-picked cases) without repeating it.
"""

from __future__ import annotations

import math
import os
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import awa

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HUNDRED_YEARS = 366 * 86400 * 100


def examples(n: int) -> int:
    """``n`` examples in CI; the loaded profile's count under HYPOTHESIS_PROFILE=long."""
    return max(n, settings().max_examples) if os.environ.get("HYPOTHESIS_PROFILE") else n


def fuzz(n: int) -> settings:
    return settings(
        max_examples=examples(n),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# ------------------------------------------------------------------------- strategies

SQLISH = [
    "'; DROP TABLE awa.jobs; --",
    "x' OR '1'='1",
    '"; DELETE FROM awa.jobs_done; --',
    "$1",
    "$$ || pg_sleep(5) || $$",
    "E'\\\\x00'",
    "\\u0000",
    "\\\\u0000",
    "%s%n%x",
    "NULL",
    "awa.jobs",
    "{{7*7}}",
    "${jndi:ldap://x/a}",
    "\u202eevil",
    "\ufeff",
    "𝕏😀",
]

surrogates = st.characters(categories=["Cs"])
any_char = st.one_of(st.characters(), surrogates, st.just("\x00"))
#: Text of every sort: ordinary, SQL-looking, with NUL or lone surrogates, blank, long.
hostile_text = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=any_char, max_size=20),
    st.sampled_from(SQLISH),
    st.sampled_from(["", " ", "\t\n", "\u3000"]),
    st.integers(1, 3).map(lambda k: "k" * (99 * k + k)),  # 100, 200, 300 characters
)
wrong_types = st.sampled_from(
    [None, 0, 1.5, True, b"bytes", ["list"], ("tu", "ple"), {"a": 1}, {1, 2}, object()]
)
huge_ints = st.one_of(
    st.integers(),
    st.sampled_from([-(2**63) - 1, -(2**63), 2**63 - 1, 2**63, 10**30, -(10**400), 10**4000]),
)
floats = st.floats(allow_nan=True, allow_infinity=True)
numbers = st.one_of(huge_ints, floats)

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    huge_ints,
    floats,
    hostile_text,
)
json_values = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(hostile_text, inner, max_size=4),
    ),
    max_leaves=16,
)
not_json = st.sampled_from([{1, 2}, b"raw", object(), {"k": {3}}, [b"x"], {(1, 2): 3}])

offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda m: timezone(timedelta(minutes=m))
)
aware = st.builds(
    lambda d, tz: d.replace(tzinfo=tz), st.datetimes(min_value=datetime(1, 1, 2)), offsets
)
instants = st.one_of(
    aware,
    st.datetimes(),  # naive
    st.dates(),
    st.sampled_from(
        [
            datetime.max.replace(tzinfo=UTC),
            datetime.min.replace(tzinfo=UTC),
            "2030-01-01T00:00:00Z",
            1_700_000_000,
        ]
    ),
)
durations = st.one_of(
    numbers,
    st.timedeltas(),
    st.sampled_from([0, -1, 1e-9, HUNDRED_YEARS, HUNDRED_YEARS + 1, timedelta.max, "5"]),
)


clean_text = st.text(alphabet=st.characters(exclude_characters="\x00"), max_size=20)
valid_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        huge_ints,
        st.floats(allow_nan=False, allow_infinity=False),
        clean_text,
        st.sampled_from(SQLISH),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(clean_text | st.sampled_from(SQLISH), inner, max_size=4),
    ),
    max_leaves=16,
)
valid_name = st.one_of(
    st.sampled_from(["email", "report.daily", "x" * 200, *SQLISH]),
    clean_text.filter(str.strip),
)
valid_aware = st.builds(
    lambda d, tz: d.replace(tzinfo=tz),
    st.datetimes(min_value=datetime(1, 1, 3), max_value=datetime(9999, 12, 30)),
    offsets,
)

#: option -> (valid values, hostile values). Hostile draws may happen to be valid: the
#: oracle decides, not the strategy.
OPTIONS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "queue": (st.sampled_from(["default", "q" * 100, *SQLISH]), hostile_text | wrong_types),
    "priority": (st.integers(1, 4), numbers | wrong_types | hostile_text),
    "max_attempts": (st.integers(1, 1000), numbers | wrong_types),
    "run_at": (valid_aware, instants | wrong_types),
    "delay": (
        st.floats(0, 10**9)
        | st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10**6)),
        durations,
    ),
    "timeout": (st.floats(0.001, HUNDRED_YEARS), durations | wrong_types),
    "tags": (
        st.lists(valid_name, max_size=3),
        st.lists(hostile_text, max_size=3) | st.sampled_from(["urgent", b"x", [1], ()]),
    ),
    "metadata": (st.dictionaries(clean_text, valid_json, max_size=3), json_values | not_json),
    "unique_key": (valid_name, hostile_text),
    "unique_scope": (
        st.sampled_from(["queued", "active", "all", *awa.UniqueScope]),
        hostile_text | wrong_types,
    ),
}
ROLES = {
    "kind": (valid_name, hostile_text | wrong_types),
    "args": (valid_json, json_values | not_json),
}


@st.composite
def insert_calls(draw: st.DrawFn, max_hostile: int = 2) -> tuple[Any, Any, dict[str, Any]]:
    """(kind, args, options): at most ``max_hostile`` of them hostile, the others valid or
    left out, so that both refusals and stored jobs are common."""
    hostile = draw(st.sets(st.sampled_from([*OPTIONS, *ROLES]), max_size=max_hostile))
    kind, args = (draw(ROLES[n][n in hostile]) for n in ("kind", "args"))
    options: dict[str, Any] = {}
    for name, (valid, bad) in OPTIONS.items():
        if name in hostile:
            options[name] = draw(bad)
        elif draw(st.booleans()):
            options[name] = draw(valid)
    if "run_at" in options and "delay" in options and not {"run_at", "delay"} & hostile:
        del options["delay"]
    return kind, args, options


# ----------------------------------------------------------------------------- oracle


def _bad_text(value: Any, max_length: int) -> bool:
    return (
        not isinstance(value, str)
        or not value.strip()
        or _has_surrogate(value)
        or len(value) > max_length
        or "\x00" in value
    )


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


def json_problem(value: Any) -> bool:
    """True when ``value`` cannot be stored as strict JSON in ``jsonb``."""
    if value is None or isinstance(value, bool):
        return False
    if isinstance(value, int):
        return bool(abs(value) >= 10 ** sys.get_int_max_str_digits())
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, str):
        return "\x00" in value or _has_surrogate(value)
    if isinstance(value, list | tuple):
        return any(json_problem(v) for v in value)
    if isinstance(value, dict):
        return any(
            not isinstance(k, str) or json_problem(k) or json_problem(v) for k, v in value.items()
        )
    return True


def _bad_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high


def _seconds(value: Any) -> float | None:
    """A duration as float seconds, or None when it is not a number/timedelta at all."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _bad_timeout(value: Any) -> bool:
    seconds = _seconds(value)
    return seconds is None or not math.isfinite(seconds) or not 0 < seconds <= HUNDRED_YEARS


def _is_aware(value: Any) -> bool:
    return isinstance(value, datetime) and value.utcoffset() is not None


def _storable_instant(value: Any) -> bool:
    """Aware, and inside years 1..9999 in UTC without being datetime.min/max there (those
    become -infinity/infinity in PostgreSQL)."""
    if not _is_aware(value):
        return False
    try:
        utc = value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        return False
    return utc not in (datetime.min, datetime.max)


def bad_fields(kind: Any, args: Any, options: Mapping[str, Any]) -> set[str]:
    """The fields a correct implementation must refuse (any one of them may be named)."""
    get = options.get
    bad: set[str] = set()
    if _bad_text(kind, 200):
        bad.add("kind")
    if json_problem({} if args is None else args):
        bad.add("args")
    if "queue" in options and get("queue") is not None and _bad_text(get("queue"), 100):
        bad.add("queue")
    if "priority" in options and _bad_int(get("priority"), 1, 4):
        bad.add("priority")
    if "max_attempts" in options and _bad_int(get("max_attempts"), 1, 1000):
        bad.add("max_attempts")
    if get("run_at") is not None and not _storable_instant(get("run_at")):
        bad.add("run_at")
    if get("delay") is not None:
        seconds = _seconds(get("delay"))
        if get("run_at") is not None or seconds is None or not 0 <= seconds <= HUNDRED_YEARS:
            bad.add("delay")
    if get("timeout") is not None and _bad_timeout(get("timeout")):
        bad.add("timeout")
    if "tags" in options:
        tags: Any = options["tags"]
        if isinstance(tags, str | bytes) or not all(
            isinstance(t, str) and t and "\x00" not in t and not _has_surrogate(t) for t in tags
        ):
            bad.add("tags")
    if get("metadata") is not None:
        meta = get("metadata")
        if not isinstance(meta, Mapping) or json_problem(dict(meta)):
            bad.add("metadata")
    if get("unique_key") is not None and _bad_text(get("unique_key"), 1000):
        bad.add("unique_key")
    if "unique_scope" in options:
        try:
            awa.UniqueScope(options["unique_scope"])
        except (ValueError, TypeError):
            bad.add("unique_scope")
    return bad


def as_json(value: Any) -> Any:
    """``value`` as JSON compares: tuples are lists, numbers are exact decimals (jsonb keeps
    the decimal text, and reads ``1e+300`` back as the integer it denotes)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, list | tuple):
        return [as_json(v) for v in value]
    return {k: as_json(v) for k, v in value.items()}


async def count_jobs(raw: asyncpg.Connection) -> int:
    return int(await raw.fetchval("SELECT count(*) FROM awa.all_jobs"))


def unique(options: dict[str, Any]) -> dict[str, Any]:
    """A valid unique key made unique per example (a repeat would return an earlier job as
    a duplicate); a hostile one is kept as generated."""
    key = options.get("unique_key")
    if isinstance(key, str) and not _bad_text(key, 1000):
        options["unique_key"] = f"{uuid.uuid4().hex}:{key}"[:1000]
    return options


def check_job(job: awa.Job, kind: str, args: Any, options: Mapping[str, Any]) -> None:
    """The stored job is what was asked for."""
    get = options.get
    assert job.kind == kind
    assert as_json(job.args) == as_json({} if args is None else args)
    assert job.queue == (get("queue") or "default")
    assert job.priority == get("priority", 2)
    assert job.max_attempts == get("max_attempts", 25)
    if get("run_at") is not None:
        assert job.run_at == get("run_at")
    elif get("delay") is not None:
        seconds = _seconds(get("delay"))
        assert seconds is not None
        assert job.run_at == T0 + timedelta(seconds=seconds)
    expected_state = awa.JobState.SCHEDULED if job.run_at > T0 else awa.JobState.AVAILABLE
    assert job.state is expected_state
    timeout = get("timeout")
    assert job.timeout == (None if timeout is None else _seconds(timeout))
    assert job.tags == list(get("tags", ()))
    assert as_json(job.metadata) == as_json(dict(get("metadata") or {}))
    assert job.unique_key == get("unique_key")


# ------------------------------------------------------------------------------ fuzz


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[awa.Client]:
    async with awa.Client(database_url, clock=awa.FakeClock(T0)) as c:
        yield c


@fuzz(250)
@given(call=insert_calls())
async def test_fuzzed_insert_is_a_typed_refusal_or_the_job_asked_for(
    client: awa.Client, raw: asyncpg.Connection, call: tuple[Any, Any, dict[str, Any]]
) -> None:
    kind, args, options = call
    options = unique(options)
    bad = bad_fields(kind, args, options)
    before = await count_jobs(raw)
    event("refused" if bad else "stored")
    if bad:
        with pytest.raises(awa.ValidationError) as caught:
            await client.insert(kind, args, **options)
        assert caught.value.field in bad, (caught.value, bad)
        assert caught.value.field in str(caught.value)
        assert await count_jobs(raw) == before
        return
    job = await client.insert(kind, args, **options)
    assert not job.duplicate
    assert await count_jobs(raw) == before + 1
    check_job(await client.get_job(job.id), kind, args, options)


batch_items = st.lists(
    insert_calls(max_hostile=0)
    | insert_calls(max_hostile=1)
    | st.sampled_from([None, {"kind": "x"}, "job"]),
    min_size=1,
    max_size=12,
)


@fuzz(120)
@given(items=batch_items, unique_keys=st.booleans())
async def test_fuzzed_insert_many_is_all_or_nothing(
    client: awa.Client, raw: asyncpg.Connection, items: list[Any], unique_keys: bool
) -> None:
    """A batch with any bad item writes nothing; a good batch stores every item as asked,
    ids in input order."""
    expected: list[tuple[str, Any, dict[str, Any]]] = []
    built: list[Any] = []
    refused: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, tuple):
            built.append(item)  # not InsertParams at all
            refused.add(f"jobs[{index}]")
            continue
        kind, args, options = item
        if unique_keys and "unique_key" not in options:
            options["unique_key"] = f"batch-{index}"
        options = unique(options)
        bad = bad_fields(kind, args, options)
        if bad:
            with pytest.raises(awa.ValidationError) as caught:
                client.params(kind, args, **options)
            assert caught.value.field in bad
            event("refused while building")
            return  # building the batch failed before any SQL: nothing to insert
        built.append(client.params(kind, args, **options))
        expected.append((kind, args, options))
    before = await count_jobs(raw)
    event("refused: not InsertParams" if refused else f"stored a batch of {len(built) // 4 * 4}+")
    if refused:
        with pytest.raises(awa.ValidationError) as caught:
            await client.insert_many(built)
        assert caught.value.field in refused
        assert await count_jobs(raw) == before
        return
    ids = await client.insert_many(built)
    assert len(ids) == len(set(ids)) == len(expected)
    assert await count_jobs(raw) == before + len(ids)
    for job_id, (kind, args, options) in zip(ids, expected, strict=True):
        check_job(await client.get_job(job_id), kind, args, options)


# -------------------------------------------------------------- focused: what passes


@pytest.mark.parametrize("size_mb", [1, 32])
async def test_huge_payload_round_trips(
    client: awa.Client, raw: asyncpg.Connection, size_mb: int
) -> None:
    blob = "é" * (size_mb * 1024 * 1024 // 2)  # two UTF-8 bytes each
    args = {"blob": blob, "rows": [{"i": i, "s": "x" * 10} for i in range(10_000)]}
    job = await client.insert("big", args)
    stored = await client.get_job(job.id)
    assert stored.args == args
    ids = await client.insert_many([client.params("big", args) for _ in range(3)])
    assert [(await client.get_job(i)).args == args for i in ids] == [True] * 3
    assert await count_jobs(raw) == 4


async def test_sql_looking_text_is_stored_verbatim_everywhere(
    client: awa.Client, raw: asyncpg.Connection
) -> None:
    for text in SQLISH:
        job = await client.insert(
            text,
            {text: text},
            queue=text[:100],
            tags=[text],
            metadata={text: [text]},
            unique_key=f"{uuid.uuid4().hex}{text}",
        )
        stored = await client.get_job(job.id)
        assert (stored.kind, stored.queue, stored.args, stored.tags) == (
            text,
            text[:100],
            {text: text},
            [text],
        )
        assert stored.metadata == {text: [text]}
    tables = await raw.fetchval(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'awa' AND tablename IN"
        " ('jobs', 'jobs_done', 'job_unique')"
    )
    assert tables == 3
    assert await count_jobs(raw) == len(SQLISH)


async def test_aware_datetimes_in_any_offset_are_the_same_instant(client: awa.Client) -> None:
    instant = datetime(2031, 7, 1, 0, 30, tzinfo=UTC)
    for minutes in (-(23 * 60 + 59), -330, 0, 345, 23 * 60 + 59):
        local = instant.astimezone(timezone(timedelta(minutes=minutes)))
        job = await client.insert("at", run_at=local)
        stored = await client.get_job(job.id)
        assert stored.run_at == instant and stored.state is awa.JobState.SCHEDULED


async def test_numbers_at_the_edges_round_trip_as_numbers(client: awa.Client) -> None:
    values = [
        2**63 - 1,
        -(2**63),
        2**63,
        10**4000,
        -(10**4000),
        5e-324,
        1.7976931348623157e308,
        -0.0,
        0.1 + 0.2,
    ]
    job = await client.insert("numbers", {"v": values})
    stored = await client.get_job(job.id)
    assert as_json(stored.args) == as_json({"v": values})


async def test_deep_json_at_the_recursion_limit_round_trips(client: awa.Client) -> None:
    """The deepest nesting json.dumps accepts here must also come back out (a job that
    can be stored but not decoded would poison every reader)."""
    depth = 1
    while depth < 5000:
        nested: Any = []
        for _ in range(depth * 2):
            nested = [nested]
        try:
            client.params("deep", nested)
        except awa.ValidationError:
            break
        except RecursionError:
            break  # test_deep_json_is_validation_error_not_recursion_error
        depth *= 2
    nested = []
    for _ in range(depth):
        nested = [nested]
    job = await client.insert("deep", nested)
    assert (await client.get_job(job.id)).args == nested


# ---------------------------------------------------------- focused: bugs found by the fuzz


@pytest.mark.parametrize(
    "delay",
    [float("nan"), float("inf"), 1e12, 10**400, timedelta.max],
    ids=["nan", "inf", "1e12", "10**400", "timedelta.max"],
)
async def test_non_finite_or_huge_delay_is_validation_error(
    client: awa.Client, raw: asyncpg.Connection, delay: Any
) -> None:
    with pytest.raises(awa.ValidationError) as caught:
        await client.insert("later", delay=delay)
    assert caught.value.field == "delay"
    assert await count_jobs(raw) == 0


async def test_timeout_too_large_for_a_float_is_validation_error(client: awa.Client) -> None:
    with pytest.raises(awa.ValidationError) as caught:
        await client.insert("slow", timeout=10**400)
    assert caught.value.field == "timeout"


@pytest.mark.parametrize(
    "run_at",
    [
        datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5))),
        datetime(1, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=5))),
    ],
    ids=["after-9999-in-utc", "before-year-1-in-utc"],
)
async def test_run_at_outside_the_storable_range_is_validation_error(
    client: awa.Client, raw: asyncpg.Connection, run_at: datetime
) -> None:
    with pytest.raises(awa.ValidationError) as caught:
        await client.insert("edge", run_at=run_at)
    assert caught.value.field == "run_at"
    assert await count_jobs(raw) == 0


@pytest.mark.parametrize(
    "run_at",
    [datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)],
    ids=["min", "max"],
)
async def test_extreme_run_at_is_refused_or_round_trips(
    client: awa.Client, run_at: datetime
) -> None:
    try:
        job = await client.insert("edge", run_at=run_at)
    except awa.ValidationError as exc:
        assert exc.field == "run_at"
        return
    stored = await client.get_job(job.id)
    assert stored.run_at.tzinfo is not None and stored.run_at == run_at
    ids = await client.insert_many([client.params("edge", run_at=run_at)])
    assert (await client.get_job(ids[0])).run_at == run_at


async def test_run_at_out_of_range_in_a_batch_writes_no_partial_row(
    client: awa.Client, raw: asyncpg.Connection
) -> None:
    """A run_at beyond the storable range is refused while building the batch (naming
    run_at), so nothing of the batch is written; the pool stays usable."""
    with pytest.raises(awa.ValidationError) as caught:
        client.params(
            "edge", run_at=datetime(9999, 12, 31, 23, tzinfo=timezone(-timedelta(hours=5)))
        )
    assert caught.value.field == "run_at"
    assert await count_jobs(raw) == 0
    good = [client.params("ok", {"i": i}) for i in range(20)]
    assert len(await client.insert_many(good)) == 20  # the pool is still usable


@pytest.mark.parametrize("tags", [None, 5], ids=["None", "int"])
async def test_tags_that_are_not_a_list_are_validation_error(client: awa.Client, tags: Any) -> None:
    with pytest.raises(awa.ValidationError) as caught:
        await client.insert("tagged", tags=tags)
    assert caught.value.field == "tags"


async def test_tags_given_as_a_generator_are_kept_or_refused(client: awa.Client) -> None:
    try:
        job = await client.insert("tagged", tags=(t for t in ["a", "b"]))  # type: ignore[arg-type]
    except awa.ValidationError as exc:
        assert exc.field == "tags"
        return
    assert (await client.get_job(job.id)).tags == ["a", "b"]


async def test_deep_json_is_validation_error_not_recursion_error(
    client: awa.Client, raw: asyncpg.Connection
) -> None:
    nested: Any = []
    for _ in range(5000):
        nested = [nested]
    with pytest.raises(awa.ValidationError) as caught:
        await client.insert("deep", nested)
    assert caught.value.field == "args"
    assert await count_jobs(raw) == 0


async def test_int_beyond_the_digit_limit_is_validation_error(
    client: awa.Client, raw: asyncpg.Connection
) -> None:
    with pytest.raises(awa.ValidationError) as caught:
        await client.insert("big", {"n": 10**5000})
    assert caught.value.field == "args"
    assert await count_jobs(raw) == 0


async def test_args_keys_that_collide_as_json_are_refused(client: awa.Client) -> None:
    """JSON turns every key into a string, so storing this would silently lose a value."""
    with pytest.raises(awa.ValidationError) as caught:
        await client.insert("keys", {1: "a", "1": "b"})
    assert caught.value.field == "args" and "collide" in str(caught.value)


async def test_keys_of_one_non_string_type_are_stored_as_strings(client: awa.Client) -> None:
    """They cannot collide, so they are kept, as JSON keeps them; insert() says so too."""
    job = await client.insert("keys", {1: "a", 2: "b"})
    assert job.args == {"1": "a", "2": "b"} == (await client.get_job(job.id)).args


async def test_insert_returns_the_job_as_stored(client: awa.Client) -> None:
    job = await client.insert("shape", {"t": (1, 2)}, metadata={"m": (3,)})
    stored = await client.get_job(job.id)
    assert (job.args, job.metadata) == (stored.args, stored.metadata)


def test_oracle_agrees_with_hand_picked_cases() -> None:
    """The oracle itself, on cases whose answer is known (an oracle that refuses nothing
    would make the fuzz pass vacuously)."""
    assert bad_fields("k", {"a": 1}, {}) == set()
    assert bad_fields("", None, {}) == {"kind"}
    assert bad_fields("k", {"s": "\ud800"}, {"priority": 0}) == {"args", "priority"}
    assert bad_fields("k", None, {"run_at": datetime(2030, 1, 1)}) == {"run_at"}
    assert bad_fields("k", None, {"run_at": T0, "delay": 1}) == {"delay"}
    assert bad_fields("k", None, {"timeout": HUNDRED_YEARS + 1}) == {"timeout"}
    assert bad_fields("k", None, {"tags": ["ok", ""]}) == {"tags"}
    assert bad_fields("k", None, {"metadata": [1]}) == {"metadata"}
    assert bad_fields("k", 10**5000, {}) == {"args"}
    assert bad_fields("k", None, {"delay": math.nan}) == {"delay"}
    assert bad_fields("k", None, {"delay": 10**400}) == {"delay"}
    assert bad_fields("k", None, {"run_at": datetime.max.replace(tzinfo=UTC)}) == {"run_at"}
    assert as_json({"x": 1e300}) == as_json({"x": 10**300})


def test_dataclass_subclass_of_insert_params_is_validated_too() -> None:
    """InsertParams.__init__ is hand-written; a dataclass subclass's generated __init__
    must still validate and encode (through __post_init__)."""
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Tagged(awa.InsertParams):
        note: str = ""

    with pytest.raises(awa.ValidationError) as caught:
        Tagged("k", priority=99)
    assert caught.value.field == "priority"
    made = Tagged("k", {"a": (1, 2)}, note="n")
    assert (made.args_json, made.note) == ('{"a":[1,2]}', "n")
