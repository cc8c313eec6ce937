"""``awa.SyncClient`` against a real PostgreSQL: every call, errors keeping their type,
threads inserting at once, and the lifecycle (close with calls in flight, use after close,
interpreter exit without close)."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import asyncpg
import pytest

import awa
from awa.errors import SyncCallTimeout, SyncClientClosed
from support.chaos import wait_for


def job_ids(url: str) -> set[int]:
    """Every job id in the database, read on a connection of the test's own."""

    async def read() -> set[int]:
        conn = await asyncpg.connect(url)
        try:
            return {int(r[0]) for r in await conn.fetch("SELECT id FROM awa.all_jobs")}
        finally:
            await conn.close()

    return asyncio.run(read())


def sync_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "awa-sync-client"}


# ------------------------------------------------------------------------ the calls


def test_every_call_round_trips(database_url: str) -> None:
    with awa.SyncClient(database_url) as sync:
        assert sync.migrate() == []  # already migrated: nothing to apply
        job = sync.insert("email", {"to": "a@example.com"}, priority=1, tags=["x"])
        assert (job.kind, job.args, job.priority, job.tags) == (
            "email",
            {"to": "a@example.com"},
            1,
            ["x"],
        )
        assert sync.get_job(job.id) == job
        ids = sync.insert_many(sync.params("email", {"n": n}, queue="bulk") for n in range(5))
        assert len(ids) == 5
        assert [j.id for j in sync.list_jobs(queue="bulk")] == sorted(ids, reverse=True)
        assert sync.cancel_job(job.id, "no longer needed").state == awa.JobState.CANCELLED
        assert sync.retry_job(job.id).state == awa.JobState.AVAILABLE
        depth = {(s.queue, s.state): s.count for s in sync.queue_stats()}
        assert depth[("bulk", "available")] == 5
        first = sync.insert("email", unique_key="k")
        assert sync.insert("email", unique_key="k").id == first.id
    assert job_ids(database_url) == {job.id, first.id, *ids}


def test_migrate_works_on_a_fresh_database(empty_database_url: str) -> None:
    """Nothing connects before a call needs the pool, so migrate runs where a connected
    client would refuse to start (MigrationError)."""
    with awa.SyncClient(empty_database_url) as sync:
        assert sync.migrate() != []
        assert sync.insert("k").id > 0


def test_a_client_with_handlers_gives_inserts_their_queue(database_url: str) -> None:
    app = awa.Client(database_url)

    @app.handler("send_email", queue="mail", timeout=30)
    async def send_email(ctx: awa.JobContext) -> None:
        return None

    with awa.SyncClient(client=app) as sync:
        job = sync.insert("send_email", {"to": "b@example.com"})
        assert (job.queue, job.timeout) == ("mail", 30.0)
        assert sync.params("send_email").queue == "mail"


async def test_a_connected_client_is_refused(database_url: str) -> None:
    async with awa.Client(database_url) as app:
        with pytest.raises(awa.ValidationError) as caught:
            awa.SyncClient(client=app)
        assert caught.value.field == "client"


def test_errors_raised_in_the_loop_keep_their_type(database_url: str) -> None:
    with awa.SyncClient(database_url) as sync:
        with pytest.raises(awa.JobNotFound) as missing:
            sync.get_job(10**12)
        assert missing.value.job_id == 10**12
        with pytest.raises(awa.ValidationError) as invalid:
            sync.insert("k", priority=9)
        assert invalid.value.field == "priority"
        done = sync.insert("k")
        sync.cancel_job(done.id)
        with pytest.raises(awa.InvalidTransition):
            sync.cancel_job(done.id)
        assert sync.get_job(done.id).state == awa.JobState.CANCELLED  # still usable


def test_the_callers_connection_is_refused_with_the_alternative(
    database_url: str, raw: asyncpg.Connection
) -> None:
    """asyncpg connections belong to their loop: handing one over must fail clearly, not
    corrupt the connection or insert outside the caller's transaction."""
    with awa.SyncClient(database_url) as sync:
        with pytest.raises(awa.ValidationError) as caught:
            sync.insert("k", conn=raw)
        assert caught.value.field == "conn"
        assert "on_commit" in caught.value.reason
        with pytest.raises(awa.ValidationError):
            sync.insert_many([sync.params("k")], conn=raw)
    assert job_ids(database_url) == set()


def test_insert_mirrors_the_async_options() -> None:
    """Same keyword options, by construction: the sync ``insert`` and ``params`` take
    ``**options: Unpack[awa.InsertOptions]`` and forward them to ``Client.params``, whose
    keyword list ``awa.InsertOptions`` matches (``tests/typed_args/test_typed_args.py``)."""
    for method in (awa.SyncClient.insert, awa.SyncClient.params):
        options = inspect.signature(method).parameters["options"]
        assert options.kind is inspect.Parameter.VAR_KEYWORD
        assert "Unpack[InsertOptions]" in str(options.annotation)
    assert set(inspect.signature(awa.SyncClient.insert).parameters) == {
        "self",
        "kind",
        "args",
        "conn",
        "options",
    }


# ------------------------------------------------------------------------ threads


def test_eight_threads_insert_at_once(database_url: str) -> None:
    per_thread = 40
    start = threading.Barrier(8)

    def produce(worker: int) -> list[int]:
        start.wait(timeout=30)
        return [sync.insert("k", {"w": worker, "i": i}).id for i in range(per_thread)]

    with awa.SyncClient(database_url, pool_size=8) as sync:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(produce, range(8)))  # re-raises any thread's error
        assert len(sync_threads()) == 1  # one loop for every caller
    inserted = [i for ids in results for i in ids]
    assert len(inserted) == len(set(inserted)) == 8 * per_thread
    assert job_ids(database_url) == set(inserted)


# ------------------------------------------------------------------------ lifecycle


def test_use_after_close_is_a_typed_error(database_url: str) -> None:
    before = sync_threads()
    sync = awa.SyncClient(database_url)
    sync.insert("k")
    assert len(sync_threads() - before) == 1
    sync.close()
    sync.close()  # idempotent
    assert sync.closed
    assert sync_threads() - before == set()  # the loop's thread is gone
    with pytest.raises(SyncClientClosed):
        sync.insert("k")
    with pytest.raises(SyncClientClosed):
        sync.migrate()
    with awa.SyncClient(database_url) as never_used:
        pass
    with pytest.raises(SyncClientClosed):
        never_used.get_job(1)


def test_close_while_calls_are_in_flight(database_url: str) -> None:
    """Callers hammering the client while it closes: each call either returns a job that
    is in the database, or raises SyncClientClosed having done nothing (in-flight calls
    finish within the grace period)."""
    enough = threading.Event()
    returned: list[int] = []
    lock = threading.Lock()

    def produce() -> str:
        while True:
            try:
                job = sync.insert("k")
            except SyncClientClosed:
                return "closed"
            with lock:
                returned.append(job.id)
                if len(returned) >= 100:
                    enough.set()

    sync = awa.SyncClient(database_url, pool_size=4)
    with ThreadPoolExecutor(8) as pool:
        outcomes = [pool.submit(produce) for _ in range(8)]
        assert enough.wait(timeout=60)
        sync.close()
        assert [f.result(timeout=60) for f in outcomes] == ["closed"] * 8
    assert job_ids(database_url) == set(returned)


@contextmanager
def row_locked(url: str, job_id: int) -> Iterator[None]:
    """Hold ``FOR UPDATE`` on a job's row from a thread of its own until the block ends:
    an operator call on that job then blocks in the server, a call that cannot finish."""
    locked, release = threading.Event(), threading.Event()

    async def hold() -> None:
        conn = await asyncpg.connect(url)
        try:
            async with conn.transaction():
                await conn.execute("SELECT 1 FROM awa.jobs WHERE id = $1 FOR UPDATE", job_id)
                locked.set()
                await asyncio.to_thread(release.wait)
        finally:
            await conn.close()

    holder = threading.Thread(target=asyncio.run, args=(hold(),))
    holder.start()
    try:
        assert locked.wait(timeout=30)
        yield
    finally:
        release.set()
        holder.join(timeout=30)


LOCK_WAITERS = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
)


def wait_until_blocked(url: str) -> None:
    """Until some backend waits for a row lock (the stuck call reached the server)."""

    async def poll() -> None:
        conn = await asyncpg.connect(url)
        try:
            await wait_for(lambda: conn.fetchval(LOCK_WAITERS), 30, what="a call blocked")
        finally:
            await conn.close()

    asyncio.run(poll())


def lock_waiters(url: str) -> int:
    async def read() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval(LOCK_WAITERS))
        finally:
            await conn.close()

    return asyncio.run(read())


def test_close_cancels_a_call_stuck_past_the_grace_period(database_url: str) -> None:
    sync = awa.SyncClient(database_url, close_grace=0)
    job = sync.insert("k")
    with row_locked(database_url, job.id), ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(sync.cancel_job, job.id)
        wait_until_blocked(database_url)
        sync.close()
        # The statement was cancelled in the server, not left waiting there: close must
        # not cancel the driver's own cancel request along with the call.
        assert lock_waiters(database_url) == 0
        with pytest.raises(SyncClientClosed):
            stuck.result(timeout=60)
    with awa.SyncClient(database_url) as check:
        assert check.get_job(job.id).state == awa.JobState.AVAILABLE  # never applied


def test_a_call_past_its_timeout_is_cancelled_and_the_client_goes_on(database_url: str) -> None:
    with awa.SyncClient(database_url, call_timeout=0.5) as sync:
        job = sync.insert("k")
        with row_locked(database_url, job.id):
            with pytest.raises(SyncCallTimeout) as caught:
                sync.cancel_job(job.id)
            assert isinstance(caught.value, TimeoutError)
        assert sync.get_job(job.id).state == awa.JobState.AVAILABLE
        assert sync.cancel_job(job.id).state == awa.JobState.CANCELLED


def test_the_interpreter_exits_without_close(database_url: str) -> None:
    """A forgotten client neither hangs the exit nor loses the insert it returned."""
    script = "import sys, awa\nsync = awa.SyncClient(sys.argv[1])\nprint(sync.insert('k').id)\n"
    done = subprocess.run(
        [sys.executable, "-c", script, database_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert job_ids(database_url) == {int(done.stdout)}
    assert "Traceback" not in done.stderr
