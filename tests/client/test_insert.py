"""Inserting jobs: transactional inserts on the caller's connection, bulk COPY inserts and
unique keys, against a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest

import awa
from awa.store import FinishedAttempt, Rescheduled


async def count_jobs(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM awa.all_jobs"))


# ------------------------------------------------------------- transactional inserts


class Rollback(Exception):
    pass


async def test_insert_in_rolled_back_transaction_leaves_no_job(
    database_url: str, raw: asyncpg.Connection
) -> None:
    async with awa.Client(database_url) as client:
        caller = await asyncpg.connect(database_url)
        try:
            with pytest.raises(Rollback):
                async with caller.transaction():
                    await caller.execute("CREATE TABLE orders (id int)")
                    job = await client.insert("ship", {"order": 1}, conn=caller)
                    assert job.id > 0
                    # visible inside the transaction, invisible outside it
                    assert (
                        await caller.fetchval("SELECT count(*) FROM awa.jobs WHERE id = $1", job.id)
                        == 1
                    )
                    assert await count_jobs(raw) == 0
                    raise Rollback
        finally:
            await caller.close()
        assert await count_jobs(raw) == 0
        with pytest.raises(awa.JobNotFound):
            await client.get_job(job.id)


async def test_insert_many_in_rolled_back_transaction_leaves_no_job(
    database_url: str, raw: asyncpg.Connection
) -> None:
    async with awa.Client(database_url) as client:
        caller = await asyncpg.connect(database_url)
        try:
            with pytest.raises(Rollback):
                async with caller.transaction():
                    ids = await client.insert_many(
                        [client.params("ship", {"order": i}) for i in range(20)]
                        + [client.params("ship", delay=600)],
                        conn=caller,
                    )
                    assert len(ids) == 21
                    inside = await caller.fetchval("SELECT count(*) FROM awa.jobs")
                    assert inside == 21
                    raise Rollback
        finally:
            await caller.close()
        assert await count_jobs(raw) == 0


async def test_insert_and_insert_many_in_committed_transaction_exist(
    database_url: str, raw: asyncpg.Connection
) -> None:
    async with awa.Client(database_url) as client:
        caller = await asyncpg.connect(database_url)
        try:
            async with caller.transaction():
                one = await client.insert("ship", {"order": 1}, conn=caller, tags=["t"])
                many = await client.insert_many(
                    [client.params("ship", {"order": i}) for i in range(2, 6)], conn=caller
                )
                assert await count_jobs(raw) == 0  # not committed yet
        finally:
            await caller.close()
        assert await count_jobs(raw) == 5
        stored = await client.get_job(one.id)
        assert stored.state is awa.JobState.AVAILABLE
        assert stored.args == {"order": 1}
        assert stored.tags == ["t"]
        assert [(await client.get_job(i)).args for i in many] == [{"order": i} for i in range(2, 6)]


async def test_unique_insert_in_rolled_back_transaction_releases_key(
    database_url: str, raw: asyncpg.Connection
) -> None:
    async with awa.Client(database_url) as client:
        caller = await asyncpg.connect(database_url)
        try:
            with pytest.raises(Rollback):
                async with caller.transaction():
                    await client.insert("ship", conn=caller, unique_key="order-7")
                    raise Rollback
        finally:
            await caller.close()
        assert await count_jobs(raw) == 0
        assert await raw.fetchval("SELECT count(*) FROM awa.job_unique") == 0
        fresh = await client.insert("ship", unique_key="order-7")
        assert not fresh.duplicate


async def test_unique_duplicate_on_callers_plain_connection(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        first = await client.insert("ship", {"order": 9}, unique_key="order-9")
        caller = await asyncpg.connect(database_url)
        try:
            async with caller.transaction():
                again = await client.insert("ship", {"order": 9}, conn=caller, unique_key="order-9")
                ids = await client.insert_many(
                    [client.params("ship", unique_key="order-9")], conn=caller
                )
        finally:
            await caller.close()
    assert again.duplicate
    assert again.id == first.id
    assert again.args == {"order": 9}
    assert ids == [first.id]


# -------------------------------------------------------------------------- bulk insert


async def test_bulk_insert_of_thousands_returns_distinct_ids_in_input_order(
    database_url: str, raw: asyncpg.Connection
) -> None:
    n = 3000
    async with awa.Client(database_url) as client:
        ids = await client.insert_many(
            [client.params("bulk", {"i": i}, queue=f"q{i % 3}") for i in range(n)]
        )
    assert len(ids) == n
    assert len(set(ids)) == n
    assert ids == sorted(ids)
    rows = await raw.fetch("SELECT id, (args->>'i')::int AS i, queue, state FROM awa.jobs")
    by_id = {r["id"]: r for r in rows}
    assert len(by_id) == n
    for i, job_id in enumerate(ids):
        assert by_id[job_id]["i"] == i
        assert by_id[job_id]["queue"] == f"q{i % 3}"
        assert by_id[job_id]["state"] == "available"


async def test_bulk_insert_marks_future_run_at_scheduled(
    database_url: str, raw: asyncpg.Connection
) -> None:
    future = datetime.now(UTC) + timedelta(hours=1)
    past = datetime.now(UTC) - timedelta(hours=1)
    async with awa.Client(database_url) as client:
        items = []
        for i in range(1000):
            if i % 4 == 0:
                items.append(client.params("bulk", {"i": i}, run_at=future))
            elif i % 4 == 1:
                items.append(client.params("bulk", {"i": i}, run_at=past))
            elif i % 4 == 2:
                items.append(client.params("bulk", {"i": i}, delay=timedelta(minutes=5)))
            else:
                items.append(client.params("bulk", {"i": i}))
        ids = await client.insert_many(items)
    rows = await raw.fetch("SELECT id, (args->>'i')::int AS i, state, run_at FROM awa.jobs")
    by_id = {r["id"]: r for r in rows}
    for i, job_id in enumerate(ids):
        row = by_id[job_id]
        assert row["i"] == i
        expected = "scheduled" if i % 4 in (0, 2) else "available"
        assert row["state"] == expected, (i, row["state"])
        if i % 4 == 0:
            assert row["run_at"] == future
        if i % 4 == 1:
            assert row["run_at"] == past


async def test_bulk_insert_with_unique_keys_returns_existing_ids_for_duplicates(
    database_url: str, raw: asyncpg.Connection
) -> None:
    async with awa.Client(database_url) as client:
        existing = await client.insert("bulk", {"i": -1}, unique_key="already-there")
        items = [
            client.params("bulk", {"i": 0}),
            client.params("bulk", {"i": 1}, unique_key="already-there"),
            client.params("bulk", {"i": 2}, unique_key="new-key"),
            client.params("bulk", {"i": 3}),
            client.params("bulk", {"i": 4}, unique_key="new-key"),
            client.params("bulk", {"i": 5}),
        ]
        ids = await client.insert_many(items)
        assert ids[1] == existing.id
        assert ids[4] == ids[2]
        assert len({ids[0], ids[2], ids[3], ids[5], existing.id}) == 5
        assert (await client.get_job(ids[2])).args == {"i": 2}
        assert (await client.get_job(ids[2])).unique_key == "new-key"
        for position in (0, 3, 5):
            assert (await client.get_job(ids[position])).args == {"i": position}
    # 1 pre-existing + 4 new rows (two of the six items were duplicates)
    assert await count_jobs(raw) == 5


async def test_bulk_copy_stream_writes_the_rows_insert_writes(
    database_url: str, raw: asyncpg.Connection
) -> None:
    """insert_many encodes PostgreSQL's binary COPY format by hand (awa.store.copy_stream):
    every column it writes must equal what the single-row INSERT writes for the same
    params, across the shapes that take different encoding paths."""
    at = datetime(2030, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
    eastern = timezone(timedelta(hours=-5))
    shapes = [
        awa.InsertParams("plain"),
        awa.InsertParams("args", {"é": ["ü", 1.5, None, True, 10**30]}, queue="q-ünï"),
        awa.InsertParams("late", run_at=at + timedelta(days=3), priority=4, max_attempts=1),
        awa.InsertParams("past", run_at=datetime(2001, 1, 1, 0, 0, 0, 1, tzinfo=eastern)),
        awa.InsertParams("pre-2000", run_at=datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        awa.InsertParams("tagged", tags=["a", "ß", "c d"], metadata={"tenant": "ü", "n": 7}),
        awa.InsertParams("timed", timeout=12.25),
        awa.InsertParams("timed", timeout=timedelta(minutes=2)),
        awa.InsertParams("tagged", tags=("a", "ß", "c d"), metadata={"tenant": "ü", "n": 7}),
    ]
    columns = (
        "kind, queue, args, state, priority, original_priority, max_attempts, run_at,"
        " created_at, timeout_s, tags, metadata, attempt, errors, progress, unique_key"
    )
    async with awa.Client(database_url) as client:
        single = [(await client.store.jobs.insert_job(p, now=at)).id for p in shapes]
        bulk = await client.store.jobs.insert_many(shapes, now=at)
        for one, many in zip(single, bulk, strict=True):
            query = f"SELECT {columns} FROM awa.jobs WHERE id = $1"
            from_bulk = await raw.fetchrow(query, many)
            from_single = await raw.fetchrow(query, one)
            assert from_bulk is not None and from_single is not None
            assert dict(from_bulk) == dict(from_single)


async def test_bulk_copy_stream_splits_large_payloads_into_bounded_messages(
    database_url: str,
) -> None:
    """Chunks are bounded by bytes as well as rows (PostgreSQL refuses a CopyData message
    of 1 GB): large args go out in several messages and arrive intact, in order."""
    from awa.store.copy_stream import CopyEncoder

    big = [awa.InsertParams("big", {"i": i, "blob": "x" * 150_000}) for i in range(5)]
    encoder = CopyEncoder(datetime.now(UTC))
    assert len(list(encoder.chunks(big, range(1, 6)))) >= 3  # ~150 KB per row, 256 KB cap
    async with awa.Client(database_url) as client:
        ids = await client.insert_many([*big, awa.InsertParams("small", {"i": 5})])
        jobs = [await client.get_job(i) for i in ids]
    assert [j.args["i"] for j in jobs] == list(range(6))
    assert all(len(j.args["blob"]) == 150_000 for j in jobs[:5])


async def test_insert_many_of_nothing_returns_empty_list(
    database_url: str, raw: asyncpg.Connection
) -> None:
    async with awa.Client(database_url) as client:
        assert await client.insert_many([]) == []
    assert await count_jobs(raw) == 0


async def test_insert_uses_handler_queue_and_timeout_defaults(database_url: str) -> None:
    client = awa.Client(database_url)

    @client.handler("mail", queue="email", timeout=timedelta(seconds=30))
    async def mail(ctx: awa.JobContext) -> None:
        return None

    async with client:
        job = await client.insert("mail", {"to": "x@example.com"}, priority=1)
        other = await client.insert("mail", queue="urgent", timeout=5)
        stored = await client.get_job(job.id)
    assert stored.queue == "email"
    assert stored.timeout == pytest.approx(30.0)
    assert stored.priority == 1
    assert other.queue == "urgent"
    assert other.timeout == pytest.approx(5.0)


# -------------------------------------------------------------------------- unique jobs


async def test_unique_key_while_first_active_returns_duplicate(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        first = await client.insert("report", {"v": 1}, unique_key="daily")
        second = await client.insert("report", {"v": 2}, unique_key="daily")
        assert not first.duplicate
        assert second.duplicate
        assert second.id == first.id
        assert second.args == {"v": 1}  # the stored job, not the rejected request

        # still a duplicate while the first one runs (scope 'active' covers running)
        [claimed] = await client.store.jobs.claim_batch("default", ["report"], 1, "worker-1")
        third = await client.insert("report", unique_key="daily")
        assert third.duplicate
        assert third.id == first.id
        assert third.state is awa.JobState.RUNNING
        assert claimed.id == first.id
        assert len(await client.list_jobs(kind="report")) == 1


async def test_unique_scope_active_allows_new_job_after_completion(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        first = await client.insert("report", unique_key="daily", unique_scope="active")
        [claimed] = await client.store.jobs.claim_batch("default", ["report"], 1, "worker-1")
        assert await client.store.jobs.complete_batch(
            [claimed.id], [claimed.run_lease], [None]
        ) == {first.id}
        second = await client.insert("report", unique_key="daily", unique_scope="active")
        assert not second.duplicate
        assert second.id != first.id
        third = await client.insert("report", unique_key="daily", unique_scope="active")
        assert third.duplicate and third.id == second.id


async def test_unique_scope_all_returns_completed_job_as_duplicate(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        first = await client.insert(
            "report", {"v": 1}, unique_key="once-ever", unique_scope=awa.UniqueScope.ALL
        )
        [claimed] = await client.store.jobs.claim_batch("default", ["report"], 1, "worker-1")
        await client.store.jobs.complete_batch([claimed.id], [claimed.run_lease], [{"ok": True}])
        again = await client.insert(
            "report", {"v": 2}, unique_key="once-ever", unique_scope=awa.UniqueScope.ALL
        )
        assert again.duplicate
        assert again.id == first.id
        assert again.state is awa.JobState.COMPLETED
        assert again.result == {"ok": True}
        assert len(await client.list_jobs(kind="report")) == 1


async def test_unique_scope_queued_allows_new_job_while_first_runs(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        first = await client.insert("sync", unique_key="acct-1", unique_scope="queued")
        dup = await client.insert("sync", unique_key="acct-1", unique_scope="queued")
        assert dup.duplicate and dup.id == first.id

        [claimed] = await client.store.jobs.claim_batch("default", ["sync"], 1, "worker-1")
        assert claimed.id == first.id
        second = await client.insert("sync", unique_key="acct-1", unique_scope="queued")
        assert not second.duplicate
        assert second.id != first.id
        assert second.state is awa.JobState.AVAILABLE
        third = await client.insert("sync", unique_key="acct-1", unique_scope="queued")
        assert third.duplicate and third.id == second.id
        assert (await client.get_job(first.id)).state is awa.JobState.RUNNING


async def test_unique_scope_queued_blocks_again_after_job_returns_to_queue(
    database_url: str,
) -> None:
    async with awa.Client(database_url) as client:
        first = await client.insert("sync", unique_key="acct-3", unique_scope="queued")
        [claimed] = await client.store.jobs.claim_batch("default", ["sync"], 1, "worker-1")
        later = datetime.now(UTC) + timedelta(hours=1)
        applied = await client.store.jobs.reschedule_batch(
            [Rescheduled(claimed.id, claimed.run_lease, awa.JobState.RETRYABLE, later, None, False)]
        )
        assert applied == {first.id}
        assert (await client.get_job(first.id)).state is awa.JobState.RETRYABLE
        again = await client.insert("sync", unique_key="acct-3", unique_scope="queued")
        assert again.duplicate
        assert again.id == first.id


async def test_unique_key_released_when_job_fails_under_scope_active(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        first = await client.insert("sync", unique_key="acct-2", max_attempts=1)
        [claimed] = await client.store.jobs.claim_batch("default", ["sync"], 1, "worker-1")
        applied = await client.store.jobs.finalize_batch(
            [FinishedAttempt(claimed.id, claimed.run_lease, awa.JobState.FAILED, {"m": "x"})]
        )
        assert applied == {first.id}
        second = await client.insert("sync", unique_key="acct-2")
        assert not second.duplicate
        # retrying the failed job cannot retake the key the new job now holds
        with pytest.raises(awa.InvalidTransition):
            await client.retry_job(first.id)
        assert (await client.get_job(first.id)).state is awa.JobState.FAILED


async def test_unique_key_released_when_waiting_job_is_cancelled(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        first = await client.insert("sync", unique_key="acct-4")
        await client.cancel_job(first.id, reason="superseded")
        second = await client.insert("sync", unique_key="acct-4")
        assert not second.duplicate
        assert second.id != first.id
        assert (await client.get_job(first.id)).state is awa.JobState.CANCELLED
