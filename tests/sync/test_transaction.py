"""``SyncClient.transaction()``: the caller's statements and jobs commit together or not at
all, on the real server; errors are typed; closing the client rolls an open one back."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest

import awa
from awa.errors import RuntimeStateError, SyncClientClosed


def read(url: str, query: str) -> set[int]:
    async def run() -> set[int]:
        conn = await asyncpg.connect(url)
        try:
            return {int(r[0]) for r in await conn.fetch(query)}
        finally:
            await conn.close()

    return asyncio.run(run())


def jobs(url: str) -> set[int]:
    return read(url, "SELECT id FROM awa.all_jobs")


class Refused(Exception):
    pass


def test_statements_and_jobs_commit_together(database_url: str) -> None:
    with awa.SyncClient(database_url) as sync:
        with sync.transaction() as tx:
            tx.execute("CREATE TABLE orders (id int PRIMARY KEY)")
            assert tx.execute("INSERT INTO orders VALUES ($1), ($2)", 1, 2) == "INSERT 0 2"
            job = tx.insert("ship", {"order": 1}, queue="shipping")
            ids = tx.insert_many(sync.params("ship", {"order": 2}) for _ in range(3))
            assert tx.fetchval("SELECT count(*) FROM awa.jobs WHERE queue = 'shipping'") == 1
            assert [r["id"] for r in tx.fetch("SELECT id FROM orders ORDER BY id")] == [1, 2]
            assert tx.fetchrow("SELECT id FROM orders WHERE id = $1", 3) is None
            assert jobs(database_url) == set()  # not visible outside before the commit
        assert jobs(database_url) == {job.id, *ids}
        assert read(database_url, "SELECT id FROM orders") == {1, 2}
        assert sync.get_job(job.id).queue == "shipping"


def test_an_exception_rolls_back_statements_and_jobs(database_url: str) -> None:
    with awa.SyncClient(database_url) as sync:
        with pytest.raises(Refused), sync.transaction() as tx:
            tx.execute("CREATE TABLE orders (id int)")
            tx.insert("ship", {"order": 1})
            raise Refused
        assert jobs(database_url) == set()
        assert sync.insert("after").id > 0  # the connection went back to the pool


def test_errors_keep_their_type_and_roll_back(database_url: str) -> None:
    """The caller's SQL raises the driver's error as it is (awa's translation would call a
    missing table of theirs a missing awa schema); awa's inserts raise awa's errors."""
    with awa.SyncClient(database_url) as sync:
        with pytest.raises(asyncpg.DivisionByZeroError) as caught, sync.transaction() as tx:
            tx.insert("ship")
            tx.execute("SELECT 1 / $1::int", 0)
        assert caught.value.sqlstate == "22012"
        with pytest.raises(asyncpg.UndefinedTableError), sync.transaction() as tx:
            tx.fetch("SELECT * FROM no_such_table")
        with pytest.raises(awa.ValidationError) as invalid, sync.transaction() as tx:
            tx.insert("ship")
            tx.insert("ship", priority=0)
        assert invalid.value.field == "priority"
        assert jobs(database_url) == set()


def test_a_handle_is_used_inside_its_block_only(database_url: str) -> None:
    with awa.SyncClient(database_url) as sync:
        tx = sync.transaction()
        with pytest.raises(RuntimeStateError):
            tx.insert("early")
        with tx:
            tx.insert("inside")
        with pytest.raises(RuntimeStateError):
            tx.insert("late")
        with pytest.raises(RuntimeStateError), tx:
            pass
    assert len(jobs(database_url)) == 1


def test_threads_sharing_a_transaction_take_turns(database_url: str) -> None:
    """asyncpg refuses overlapping statements on one connection; the handle serialises."""
    with (
        awa.SyncClient(database_url) as sync,
        sync.transaction() as tx,
        ThreadPoolExecutor(4) as pool,
    ):
        inserted = list(pool.map(lambda i: tx.insert("k", {"i": i}).id, range(40)))
    assert jobs(database_url) == set(inserted)


def test_closing_the_client_rolls_an_open_transaction_back(database_url: str) -> None:
    sync = awa.SyncClient(database_url)
    with pytest.raises(SyncClientClosed), sync.transaction() as tx:
        tx.insert("never")
        sync.close()
    assert jobs(database_url) == set()
