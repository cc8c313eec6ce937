"""``insert_batch``: many jobs of one kind sharing their options, one COPY with no params
object per job, against a real PostgreSQL. Its rows must be the rows ``insert_many``
writes for the same jobs (the reference path, itself checked against the single INSERT
in ``test_insert.py``), its errors must name the item, and it is all or nothing."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import asyncpg
import pytest

import awa

COLUMNS = (
    "kind, queue, args, state, priority, original_priority, max_attempts, run_at,"
    " created_at, timeout_s, tags, metadata, attempt, errors, progress, unique_key"
)


async def rows(raw: asyncpg.Connection, ids: list[int]) -> list[dict[str, Any]]:
    query = f"SELECT {COLUMNS} FROM awa.jobs WHERE id = $1"
    out = []
    for job_id in ids:
        row = await raw.fetchrow(query, job_id)
        assert row is not None, job_id
        out.append(dict(row))
    return out


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"queue": "q-ünï", "priority": 4, "max_attempts": 1, "timeout": 12.25},
        {"tags": ["a", "ß", "c d"], "metadata": {"tenant": "ü", "n": 7}},
        {"run_at": datetime(2031, 1, 1, tzinfo=UTC)},
        {"run_at": datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), "timeout": timedelta(minutes=2)},
    ],
)
async def test_a_batch_writes_the_rows_insert_many_writes(
    database_url: str, raw: asyncpg.Connection, options: dict[str, Any]
) -> None:
    at = datetime(2030, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
    args = [{"i": i, "é": ["ü", 1.5, None, True]} for i in range(1200)] + [None, [1, 2], "s"]
    async with awa.Client(database_url) as client:
        reference = await client.store.jobs.insert_many(
            [client.params("shape", a, **options) for a in args], now=at
        )
        first = client.params("shape", args[0], **options)
        texts = [client.params("shape", a, **options).args_json for a in args]
        batch = await client.store.jobs.insert_batch(first, texts, now=at)
        assert len(batch) == len(args) and batch == sorted(batch)
        assert await rows(raw, batch) == await rows(raw, reference)
        # and through the client, in order
        ids = await client.insert_batch("shape", args[:3], **options)
        stored = [(await client.get_job(i)).args for i in ids]
    assert stored == args[:3]


async def test_errors_name_the_item_and_nothing_is_inserted(
    database_url: str, raw: asyncpg.Connection
) -> None:
    async with awa.Client(database_url) as client:
        with pytest.raises(awa.ValidationError, match=r"args\[2\]"):
            await client.insert_batch("k", [{"i": 0}, {"i": 1}, {"bad": float("nan")}])
        with pytest.raises(awa.ValidationError, match=r"args\[0\]"):
            await client.insert_batch("k", [{1: "a", "1": "b"}])
        with pytest.raises(awa.ValidationError, match="priority"):
            await client.insert_batch("k", [{"i": 0}], priority=9)
        with pytest.raises(awa.ValidationError, match="unique_key"):
            await client.insert_batch("k", [{"i": 0}], unique_key="one")  # type: ignore[call-arg]
        with pytest.raises(awa.ValidationError, match="unique_scope"):
            await client.insert_batch("k", [], unique_scope="all")  # type: ignore[call-arg]
        # One job's args, or insert_many's input, passed by mistake: refused, not stored.
        for wrong in ({"to": "a@x"}, "abc", b"abc"):
            with pytest.raises(awa.ValidationError, match="iterable of per-job args"):
                await client.insert_batch("k", wrong)
        with pytest.raises(awa.ValidationError, match="insert_many"):
            await client.insert_batch("k", [client.params("k", {"i": 0})])
        assert await client.insert_batch("k", []) == []
    assert await raw.fetchval("SELECT count(*) FROM awa.all_jobs") == 0


@dataclasses.dataclass
class Email:
    to: str


async def test_typed_args_are_checked_per_item(database_url: str, raw: asyncpg.Connection) -> None:
    client = awa.Client(database_url)

    @client.handler("mail", queue="email", args=Email)
    async def mail(ctx: awa.JobContext) -> None:
        return None

    async with client:
        with pytest.raises(awa.ValidationError, match=r"args\[1\]"):
            await client.insert_batch("mail", [Email("a@x"), {"to": 5}])
        ids = await client.insert_batch("mail", [Email("a@x"), {"to": "b@x"}])
        jobs = [await client.get_job(i) for i in ids]
    assert [j.args for j in jobs] == [{"to": "a@x"}, {"to": "b@x"}]
    assert {j.queue for j in jobs} == {"email"}, "the handler's queue, as insert uses"


async def test_a_batch_in_the_callers_transaction_rolls_back_with_it(
    database_url: str, raw: asyncpg.Connection
) -> None:
    async with awa.Client(database_url) as client:
        caller = await asyncpg.connect(database_url)
        try:
            with pytest.raises(RuntimeError):
                async with caller.transaction():
                    ids = await client.insert_batch("k", [{"i": i} for i in range(5)], conn=caller)
                    assert len(ids) == 5
                    raise RuntimeError("roll back")
        finally:
            await caller.close()
    assert await raw.fetchval("SELECT count(*) FROM awa.all_jobs") == 0


async def test_a_batch_wakes_the_queue_and_a_runtime_runs_it(database_url: str) -> None:
    """Due jobs NOTIFY their queue at commit (the runtime polls rarely here, so only the
    NOTIFY makes them run at once); a batch due later announces itself to the leader."""
    client = awa.Client(database_url)
    ran: list[int] = []
    done = anyio.Event()

    @client.handler("k")
    async def k(ctx: awa.JobContext) -> None:
        ran.append(ctx.args["i"])
        if len(ran) == 50:
            done.set()

    config = awa.RuntimeConfig(poll_interval=600.0)
    async with client, awa.Runtime(client, config, run_maintenance=False):
        listener = await asyncpg.connect(database_url)
        heard: list[str] = []
        announced = asyncio.Event()

        def on_due(*note: Any) -> None:
            heard.append(str(note[3]))
            announced.set()

        await listener.add_listener("awa_due", on_due)
        try:
            await client.insert_batch("k", [{"i": i} for i in range(50)])
            with anyio.fail_after(10):
                await done.wait()
            later = datetime.now(UTC) + timedelta(hours=1)
            await client.insert_batch("k", [{"i": -1}], run_at=later)
            with anyio.fail_after(5):
                await announced.wait()
        finally:
            await listener.close()
    assert sorted(ran) == list(range(50))
    assert float(heard[-1]) == pytest.approx(later.timestamp(), abs=1e-3)


def test_the_sync_client_inserts_a_batch(database_url: str) -> None:
    with awa.SyncClient(database_url) as sync:
        ids = sync.insert_batch("k", ({"i": i} for i in range(3)), priority=1)
        jobs = [sync.get_job(i) for i in ids]
    assert [j.args for j in jobs] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert {j.priority for j in jobs} == {1}


async def test_a_session_not_in_utf8_takes_the_records_path_with_the_same_rows(
    database_url: str, raw: asyncpg.Connection
) -> None:
    """A caller's connection in another client_encoding cannot take the hand-encoded binary
    stream; both bulk calls then COPY records through asyncpg's codecs, same rows."""
    args = [{"i": i, "s": "plain"} for i in range(5)]
    options: dict[str, Any] = {"tags": ["a"], "priority": 3, "metadata": {"m": 1}}
    async with awa.Client(database_url) as client:
        reference = await client.insert_batch("enc", args, **options)
        caller = await asyncpg.connect(database_url)
        try:
            await caller.execute("SET client_encoding = 'LATIN1'")
            batch = await client.insert_batch("enc", args, conn=caller, **options)
            many = await client.insert_many(
                [client.params("enc", a, **options) for a in args], conn=caller
            )
        finally:
            await caller.close()

    async def timeless(ids: list[int]) -> list[dict[str, Any]]:
        """The rows without run_at and created_at (each call's own "now")."""
        return [{k: v for k, v in r.items() if not k.endswith("_at")} for r in await rows(raw, ids)]

    expected = await timeless(reference)
    for ids in (batch, many):
        got = await timeless(ids)
        assert got == expected
