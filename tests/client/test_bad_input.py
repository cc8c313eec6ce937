"""Bad input: every mistake a caller can make raises a typed error naming the field, and
nothing is written to the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

import awa
from awa.db import connect


async def count_jobs(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM awa.all_jobs"))


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[awa.Client]:
    async with awa.Client(database_url) as c:
        yield c


class Unserialisable:
    pass


BAD_INSERTS: list[tuple[str, dict[str, Any], str]] = [
    ("args-set", {"args": {1, 2, 3}}, "args"),
    ("args-object", {"args": {"obj": Unserialisable()}}, "args"),
    ("args-nan", {"args": {"x": float("nan")}}, "args"),
    ("args-inf", {"args": [float("inf")]}, "args"),
    ("args-bytes", {"args": {"b": b"raw"}}, "args"),
    ("args-nul", {"args": {"text": "a\u0000b"}}, "args"),
    ("args-nul-key", {"args": {"k\u0000": 1}}, "args"),
    ("priority-0", {"priority": 0}, "priority"),
    ("priority-5", {"priority": 5}, "priority"),
    ("priority-bool", {"priority": True}, "priority"),
    ("priority-str", {"priority": "1"}, "priority"),
    ("max-attempts-0", {"max_attempts": 0}, "max_attempts"),
    ("max-attempts-1001", {"max_attempts": 1001}, "max_attempts"),
    ("run-at-naive", {"run_at": datetime(2030, 1, 1, 12, 0)}, "run_at"),
    ("run-at-not-datetime", {"run_at": "2030-01-01T00:00:00Z"}, "run_at"),
    ("run-at-and-delay", {"run_at": datetime.now(UTC), "delay": 5}, "delay"),
    ("delay-negative", {"delay": -1}, "delay"),
    ("timeout-zero", {"timeout": 0}, "timeout"),
    ("timeout-negative", {"timeout": timedelta(seconds=-3)}, "timeout"),
    ("timeout-nan", {"timeout": float("nan")}, "timeout"),
    ("queue-empty", {"queue": ""}, "queue"),
    ("queue-blank", {"queue": "  "}, "queue"),
    ("queue-nul", {"queue": "q\u0000"}, "queue"),
    ("tags-string", {"tags": "urgent"}, "tags"),
    ("tags-empty-item", {"tags": ["ok", ""]}, "tags"),
    ("metadata-list", {"metadata": [1, 2]}, "metadata"),
    ("metadata-nan", {"metadata": {"x": float("nan")}}, "metadata"),
    ("unique-key-empty", {"unique_key": ""}, "unique_key"),
    ("unique-scope-bogus", {"unique_scope": "forever"}, "unique_scope"),
]


@pytest.mark.parametrize(
    ("options", "field"),
    [pytest.param(options, field, id=name) for name, options, field in BAD_INSERTS],
)
async def test_bad_insert_raises_validation_error_and_writes_nothing(
    client: awa.Client, raw: asyncpg.Connection, options: dict[str, Any], field: str
) -> None:
    await client.insert("seed")
    before = await count_jobs(raw)
    options = dict(options)
    args = options.pop("args", {"ok": True})
    with pytest.raises(awa.ValidationError) as caught:
        await client.insert("job", args, **options)
    assert caught.value.field == field
    assert field in str(caught.value)
    assert await count_jobs(raw) == before == 1


@pytest.mark.parametrize("kind", ["", "   ", "\t\n", "k\u0000", "x" * 201, None, 42])
async def test_bad_kind_raises_validation_error_and_writes_nothing(
    client: awa.Client, raw: asyncpg.Connection, kind: Any
) -> None:
    with pytest.raises(awa.ValidationError) as caught:
        await client.insert(kind, {"a": 1})
    assert caught.value.field == "kind"
    assert await count_jobs(raw) == 0


@pytest.mark.parametrize("kind", ["", "has space", "x" * 201])
def test_bad_handler_kind_is_rejected_at_registration(kind: str) -> None:
    client = awa.Client("postgresql://unused@127.0.0.1:1/x")

    async def handler(ctx: awa.JobContext) -> None:
        return None

    with pytest.raises(awa.ValidationError) as caught:
        client.registry.register(kind, handler)
    assert caught.value.field == "kind"


def test_registering_a_kind_twice_is_rejected() -> None:
    client = awa.Client("postgresql://unused@127.0.0.1:1/x")

    @client.handler("dup")
    async def first(ctx: awa.JobContext) -> None:
        return None

    with pytest.raises(awa.ValidationError) as caught:

        @client.handler("dup")
        async def second(ctx: awa.JobContext) -> None:
            return None

    assert caught.value.field == "kind"


async def test_unknown_state_name_in_list_jobs_is_validation_error(client: awa.Client) -> None:
    with pytest.raises(awa.ValidationError) as caught:
        await client.list_jobs(state="bogus")
    assert caught.value.field == "state"
    assert "available" in caught.value.reason
    assert await client.list_jobs(state="available") == []


@pytest.mark.parametrize("limit", [0, -1, 10_001])
async def test_out_of_range_list_limit_is_validation_error(client: awa.Client, limit: int) -> None:
    with pytest.raises(awa.ValidationError) as caught:
        await client.list_jobs(limit=limit)
    assert caught.value.field == "limit"


async def test_bulk_with_one_bad_item_inserts_nothing(
    client: awa.Client, raw: asyncpg.Connection
) -> None:
    # validation happens while building the items, before any SQL
    with pytest.raises(awa.ValidationError) as caught:
        items = [client.params("bulk", {"i": i}, priority=5 if i == 37 else 2) for i in range(100)]
        await client.insert_many(items)
    assert caught.value.field == "priority"
    assert await count_jobs(raw) == 0

    # an item that is not InsertParams at all is named by its position
    good = [client.params("bulk", {"i": i}) for i in range(5)]
    mixed: list[Any] = [*good[:3], {"kind": "bulk"}, *good[3:]]
    with pytest.raises(awa.ValidationError) as caught:
        await client.insert_many(mixed)
    assert caught.value.field == "jobs[3]"
    assert await count_jobs(raw) == 0


async def test_bulk_rejected_by_database_is_all_or_nothing(
    client: awa.Client, raw: asyncpg.Connection
) -> None:
    # a lone UTF-16 surrogate passes json.dumps but PostgreSQL's jsonb refuses it: it is
    # rejected while building the batch, so none of the valid items is written
    items = [client.params("bulk", {"i": i}) for i in range(50)]
    with pytest.raises(awa.ValidationError) as caught:
        items.insert(25, client.params("bulk", {"s": "\ud800"}))
        await client.insert_many(items)
    assert caught.value.field == "args"
    assert await count_jobs(raw) == 0
    # the client and its pool are still usable afterwards
    assert len(await client.insert_many(items[:3])) == 3


DB_REJECTION = (asyncpg.PostgresError, awa.AwaError)


async def test_bulk_refused_by_database_mid_batch_is_all_or_nothing(
    client: awa.Client, raw: asyncpg.Connection
) -> None:
    # the database itself refuses one row, which no client-side validation can foresee
    await raw.execute(
        "ALTER TABLE awa.jobs ADD CONSTRAINT test_no_poison CHECK (NOT args ? 'poison')"
    )
    plain = [client.params("bulk", {"i": i}) for i in range(50)]

    # refused inside the COPY
    with pytest.raises(DB_REJECTION):
        await client.insert_many([*plain[:25], client.params("bulk", {"poison": 1}), *plain[25:]])
    assert await count_jobs(raw) == 0

    # refused in the unique-key phase, after the COPY of the plain items succeeded
    with pytest.raises(DB_REJECTION):
        await client.insert_many(
            [*plain, client.params("bulk", {"poison": 2}, unique_key="poisoned")]
        )
    assert await count_jobs(raw) == 0
    assert await raw.fetchval("SELECT count(*) FROM awa.job_unique") == 0

    # and on the caller's connection, inside the caller's transaction
    caller = await asyncpg.connect(client.store.url)
    try:
        with pytest.raises(DB_REJECTION):
            async with caller.transaction():
                await client.insert_many(
                    [*plain, client.params("bulk", {"poison": 3})], conn=caller
                )
    finally:
        await caller.close()
    assert await count_jobs(raw) == 0

    # the client and its pool are still usable afterwards
    assert len(await client.insert_many(plain[:3])) == 3
    assert await count_jobs(raw) == 3


async def test_lone_surrogate_in_args_is_validation_error(
    client: awa.Client, raw: asyncpg.Connection
) -> None:
    with pytest.raises(awa.ValidationError) as caught:
        await client.insert("job", {"s": "\ud800"})
    assert caught.value.field == "args"
    with pytest.raises(awa.ValidationError):
        await client.insert_many([client.params("job"), client.params("job", {"s": "\udfff"})])
    assert await count_jobs(raw) == 0


async def test_lone_surrogate_in_kind_is_validation_error(
    client: awa.Client, raw: asyncpg.Connection
) -> None:
    with pytest.raises(awa.ValidationError) as caught:
        await client.insert("kind\ud800")
    assert caught.value.field == "kind"
    assert await count_jobs(raw) == 0


async def test_literal_backslash_u0000_text_is_accepted(client: awa.Client) -> None:
    text = "C:\\u0000\\path"  # a backslash, not a NUL character
    assert "\x00" not in text
    job = await client.insert("job", {"path": text})
    assert (await client.get_job(job.id)).args == {"path": text}


async def test_postgres_accepts_escaped_backslash_u0000_in_jsonb(raw: asyncpg.Connection) -> None:
    # the premise of the test above: jsonb stores this text fine
    value = await raw.fetchval("SELECT ($1::jsonb)->>'p'", '{"p": "C:\\\\u0000"}')
    assert value == "C:\\u0000"


# --------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "url",
    [
        "mysql://x",
        "postgresql://host:notaport/db",
        "postgresql://host:99999999/db",
        "http://localhost/db",
        "",
        "   ",
    ],
)
async def test_malformed_database_url_is_config_error(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWA_DATABASE_URL", raising=False)
    client = awa.Client(url)
    with pytest.raises(awa.ConfigError):
        await client.connect()
    with pytest.raises(awa.ConfigError):
        await connect(url)
    with pytest.raises(awa.ConfigError):
        awa.Client("postgresql://ok@localhost/db").set_database_url(url)


async def test_missing_database_url_is_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWA_DATABASE_URL", raising=False)
    with pytest.raises(awa.ConfigError):
        await awa.Client().connect()


async def test_unreachable_server_is_database_unavailable() -> None:
    client = awa.Client("postgresql://postgres@127.0.0.1:1/x")
    with pytest.raises(awa.DatabaseUnavailable):
        await client.connect()
    with pytest.raises(awa.DatabaseUnavailable):
        await connect("postgresql://postgres@127.0.0.1:1/x")
    # still unconnected: using it says so instead of failing obscurely
    with pytest.raises(awa.ConfigError):
        await client.insert("job")


async def test_nonexistent_database_is_config_error(database_url: str) -> None:
    parts = urlsplit(database_url)
    missing = parts._replace(path="/awa_no_such_database").geturl()
    with pytest.raises(awa.ConfigError):
        await awa.Client(missing).connect()


@pytest.mark.parametrize(
    "options",
    [
        {"queues": {"default": 0}},
        {"queues": {"": 1}},
        {"queues": {"default": True}},
        {"claim_batch": 0},
        {"poll_interval": -1},
        {"heartbeat_interval": -0.1},
        {"pool_size": 1},
    ],
)
def test_bad_runtime_config_is_validation_error(options: dict[str, Any]) -> None:
    with pytest.raises(awa.ValidationError):
        awa.RuntimeConfig(**options)
