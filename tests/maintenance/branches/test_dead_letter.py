"""``dead_letter``: the dead-letter hold's pass. Policy publication, orphaning and revival;
the move out of the history ring (whole row, full error history, bounded pages); retention
per queue; and the move's atomicity: a crash mid-statement, TRUNCATE by ``rotate`` in either
order, and a race with rotate, cleanup and operator retries.

Driven directly (no leader); retry, purge and ``awa dlq`` are tested in
``tests/dlq/test_dlq.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import asyncpg
import pytest

import awa
from awa.config import MaintenanceConfig
from awa.db.queries import sql_text
from awa.dlq import DeadLetterPolicy, DeadLetters
from awa.errors import DeadLetterNotFound
from awa.maintenance.branches.cleanup import Cleanup
from awa.maintenance.branches.dead_letter import DeadLetterHold
from awa.maintenance.branches.rotate import Rotate
from awa.store import Store
from support.dlq_world import fail_job, hold, where
from support.store_world import ctx_for

T0 = datetime(2030, 1, 1, tzinfo=UTC)


async def test_sync_publishes_orphans_and_revives_policies(
    mstore: Store, raw: asyncpg.Connection
) -> None:
    clock = awa.FakeClock(T0)
    a, b = DeadLetterPolicy("a", 3600), DeadLetterPolicy("b", None)
    result = await hold(a, b).run_once(ctx_for(mstore, clock))
    assert (result.rows["declared"], result.rows["orphaned"]) == (2, 0)
    rows = {r["queue"]: r for r in await raw.fetch("SELECT * FROM awa.dead_letter_policies")}
    assert rows["a"]["retention_s"] == 3600 and rows["b"]["retention_s"] is None
    assert rows["a"]["synced_by"] == "test" and rows["a"]["declared_at"] == T0

    only_a = hold(a, orphan_after=120)
    assert (await only_a.run_once(ctx_for(mstore, clock))).rows["orphaned"] == 0  # rolling deploy
    clock.advance(121)
    assert (await only_a.run_once(ctx_for(mstore, clock))).rows["orphaned"] == 1
    b_row = await raw.fetchrow("SELECT * FROM awa.dead_letter_policies WHERE queue = 'b'")
    assert b_row is not None and b_row["orphaned_at"] == clock.now()  # kept, not deleted

    # An orphaned policy's queue keeps its failures in history; declared again, they move.
    failed = await fail_job(mstore, "b", attempts=1)
    assert (await only_a.run_once(ctx_for(mstore, clock))).rows["moved"] == 0
    assert await where(raw, failed) == ["jobs_done"]
    assert (await hold(a, b).run_once(ctx_for(mstore, clock))).rows["moved"] == 1
    assert await where(raw, failed) == ["dead_letters"]

    # A pool-only leader (no declarations) works from the stored policies, publishes nothing.
    other = await fail_job(mstore, "a", attempts=1)
    result = await DeadLetterHold(None).run_once(ctx_for(mstore, clock))
    assert result.rows == {"declared": 0, "orphaned": 0, "moved": 1, "expired": 0}
    assert await where(raw, other) == ["dead_letters"]


# ------------------------------------------------------------------------------- move


async def test_move_keeps_the_whole_row_and_error_history(
    client: awa.Client, mstore: Store, raw: asyncpg.Connection
) -> None:
    dead = await fail_job(
        mstore,
        "emails",
        attempts=3,
        args={"to": "x@example.com", "n": [1, 2.5, None]},
        tags=["billing"],
        metadata={"tenant": 7},
        priority=3,
        timeout=12.5,
    )
    other_queue = await fail_job(mstore, "reports", attempts=1)
    completed = await mstore.jobs.insert_job(awa.InsertParams("send_email", queue="emails"))
    (claimed,) = await mstore.jobs.claim_batch("emails", ["send_email"], 1, "test-runtime")
    await mstore.jobs.complete_batch([claimed.id], [claimed.run_lease], [{"ok": True}])
    cancelled = await mstore.jobs.insert_job(awa.InsertParams("send_email", queue="emails"))
    await mstore.admin.cancel_job(cancelled.id, "not needed")
    before = await raw.fetchrow("SELECT * FROM awa.jobs_done WHERE id = $1", dead)
    assert before is not None

    result = await hold(DeadLetterPolicy("emails")).run_once(ctx_for(mstore))
    assert result.rows == {"declared": 1, "orphaned": 0, "moved": 1, "expired": 0}
    assert result.more is False
    assert await where(raw, dead) == ["dead_letters"]
    for untouched in (other_queue, completed.id, cancelled.id):  # other queue, other states
        assert await where(raw, untouched) == ["jobs_done"]

    after = await raw.fetchrow("SELECT * FROM awa.dead_letters WHERE id = $1", dead)
    assert after is not None
    for column in set(before.keys()) - {"slot", "state", "result"}:
        assert after[column] == before[column], column
    assert after["reason"] == "smtp refused, attempt 3"
    assert after["retried_at"] is None and after["retried_job_id"] is None

    letter = await DeadLetters(client).get(dead)
    assert letter.args == {"to": "x@example.com", "n": [1, 2.5, None]}
    assert (letter.attempt, letter.max_attempts, letter.priority) == (3, 3, 3)
    assert (letter.tags, letter.metadata, letter.timeout) == (["billing"], {"tenant": 7}, 12.5)
    assert [e["attempt"] for e in letter.errors] == [1, 2, 3]
    assert all(e["type"] == "RuntimeError" and "Traceback" in e["traceback"] for e in letter.errors)
    assert letter.finalized_at <= letter.dead_at
    with pytest.raises(DeadLetterNotFound, match=f"id={completed.id}"):
        await DeadLetters(client).get(completed.id)
    with pytest.raises(awa.JobNotFound):  # it left the job tables: awa.all_jobs no longer has it
        await client.get_job(dead)


async def test_move_pages_in_bounded_batches(
    client: awa.Client, mstore: Store, raw: asyncpg.Connection
) -> None:
    ids = [await fail_job(mstore, "emails", attempts=1) for _ in range(25)]
    branch = hold(DeadLetterPolicy("emails"), batch=10)
    pages = []
    while True:
        result = await branch.run_once(ctx_for(mstore))
        pages.append(result.rows["moved"])
        if not result.more:
            break
    assert pages == [10, 10, 5]
    letters = await DeadLetters(client).list_letters(queue="emails", limit=100)
    assert sorted(d.id for d in letters) == ids
    assert await raw.fetchval("SELECT count(*) FROM awa.jobs_done") == 0
    first = await DeadLetters(client).list_letters(limit=10)
    assert [d.id for d in first] == sorted(ids, reverse=True)[:10]  # newest first
    rest = await DeadLetters(client).list_letters(limit=100, before_id=first[-1].id)
    assert [d.id for d in first + rest] == sorted(ids, reverse=True)


# -------------------------------------------------------------------------- retention


async def test_retention_deletes_only_letters_past_their_queue_retention(
    mstore: Store, raw: asyncpg.Connection
) -> None:
    clock = awa.FakeClock(T0)
    short = [await fail_job(mstore, "short", attempts=1) for _ in range(3)]
    forever = await fail_job(mstore, "forever", attempts=1)
    branch = hold(DeadLetterPolicy("short", 3600), DeadLetterPolicy("forever", None), batch=2)
    assert (await branch.run_once(ctx_for(mstore, clock))).rows["moved"] == 2
    assert (await branch.run_once(ctx_for(mstore, clock))).rows["moved"] == 2
    clock.advance(1800)
    late = await fail_job(mstore, "short", attempts=1)
    assert (await branch.run_once(ctx_for(mstore, clock))).rows["moved"] == 1  # dead at T0+1800

    clock.advance(1801)  # the first four are past 3600 s, the late one is not
    expired = []
    while True:
        result = await branch.run_once(ctx_for(mstore, clock))
        expired.append(result.rows["expired"])
        if not result.more:
            break
    assert expired == [2, 1]  # bounded by batch; "forever" has no retention
    assert {r["id"] for r in await raw.fetch("SELECT id FROM awa.dead_letters")} == {forever, late}
    for job_id in short:
        assert await where(raw, job_id) == []

    # An orphaned policy's retention still applies to the letters it holds.
    clock.advance(3600)
    orphaning = hold(DeadLetterPolicy("forever", None), orphan_after=120)
    result = await orphaning.run_once(ctx_for(mstore, clock))
    assert (result.rows["orphaned"], result.rows["expired"]) == (1, 1)
    assert await where(raw, late) == []
    assert await where(raw, forever) == ["dead_letters"]


# ------------------------------------------------------------------------ atomicity


async def seed_history(
    raw: asyncpg.Connection, queue: str, n: int, slot: int, age: str, state: str = "failed"
) -> list[int]:
    """``n`` finished jobs written straight into ring slot ``slot``, finalized ``age`` ago."""
    rows = await raw.fetch(
        "INSERT INTO awa.jobs_done (slot, id, kind, queue, args, state, priority,"
        " original_priority, attempt, max_attempts, run_at, created_at, attempted_at,"
        " finalized_at, tags, metadata, errors, run_lease)"
        " SELECT $1, nextval('awa.job_id_seq'), 'send_email', $2, jsonb_build_object('n', g),"
        " $5::awa.job_state, 2, 2, 3, 3, now() - $3::text::interval,"
        " now() - $3::text::interval, now() - $3::text::interval, now() - $3::text::interval,"
        " '{}', '{}', jsonb_build_array(jsonb_build_object('attempt', 3, 'message', 'boom')), 3"
        " FROM generate_series(1, $4) g RETURNING id",
        slot,
        queue,
        age,
        n,
        state,
    )
    return [int(r["id"]) for r in rows]


async def publish(mstore: Store, *queues: str) -> None:
    policies = [DeadLetterPolicy(q) for q in queues]
    await mstore.dlq.dlq_upsert_policies(policies, "test")


async def wait_blocked(raw: asyncpg.Connection, needle: str) -> int:
    """The pid of the backend whose query contains ``needle`` once it waits on a lock."""
    with anyio.fail_after(10):
        while True:
            pid = await raw.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database()"
                " AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()",
                needle,
            )
            if pid is not None:
                return int(pid)
            await anyio.sleep(0.01)


async def test_a_crash_in_the_middle_of_a_move_leaves_every_job_in_history(
    database_url: str, mstore: Store, raw: asyncpg.Connection
) -> None:
    await publish(mstore, "emails")
    ids = await seed_history(raw, "emails", 50, 0, "1 min")
    # Another transaction inserts (uncommitted) a letter with the id of one of the jobs, so
    # the move blocks on that unique key in the middle of its statement: its DELETE has run
    # for some rows, its INSERT waits. Then its backend is killed.
    blocker = await asyncpg.connect(database_url)
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute(
            "INSERT INTO awa.dead_letters SELECT id, kind, queue, args, priority,"
            " original_priority, attempt, max_attempts, run_at, created_at, attempted_at,"
            " finalized_at, timeout_s, tags, metadata, errors, progress, unique_key,"
            " unique_states, run_lease, claimed_by, 'blocker', now()"
            " FROM awa.jobs_done WHERE id = $1",
            ids[-1],
        )
        store = mstore
        failure: list[BaseException] = []

        async def move() -> None:
            try:
                await store.dlq.dlq_move(1000)
            except awa.DatabaseUnavailable as exc:
                failure.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(move)
            pid = await wait_blocked(raw, "INSERT INTO awa.dead_letters (id")
            assert await raw.fetchval("SELECT pg_terminate_backend($1)", pid)
        assert failure, "the killed move must report a lost connection"
        await tx.rollback()
    finally:
        await blocker.close()
    assert await raw.fetchval("SELECT count(*) FROM awa.dead_letters") == 0
    assert sorted(r["id"] for r in await raw.fetch("SELECT id FROM awa.jobs_done")) == ids
    result = await DeadLetterHold(None).run_once(ctx_for(mstore))
    assert result.rows["moved"] == 50
    for job_id in ids:
        assert await where(raw, job_id) == ["dead_letters"]


async def test_truncate_waits_for_a_move_in_flight_and_the_moved_rows_survive(
    database_url: str, mstore: Store, raw: asyncpg.Connection
) -> None:
    await publish(mstore, "emails")
    expired_failed = await seed_history(raw, "emails", 20, 2, "30 days")
    expired_done = await seed_history(raw, "emails", 5, 2, "30 days", "completed")
    mover = await asyncpg.connect(database_url)
    try:
        tx = mover.transaction()
        await tx.start()
        moved = await mover.fetch(sql_text("dlq_move"), 1000, None)
        assert len(moved) == 20

        async def truncate() -> None:
            await mstore.maintenance.truncate_slot(2)  # what rotate does to an expired slot

        async with anyio.create_task_group() as tg:
            tg.start_soon(truncate)
            await wait_blocked(raw, "TRUNCATE awa.jobs_done_2")
            await tx.commit()
    finally:
        await mover.close()
    for job_id in expired_failed:
        assert await where(raw, job_id) == ["dead_letters"]
    for job_id in expired_done:
        assert await where(raw, job_id) == []  # pruned by the TRUNCATE, as it should be


async def test_a_move_waits_for_a_truncate_in_flight_and_finds_the_slot_pruned(
    database_url: str, mstore: Store, raw: asyncpg.Connection
) -> None:
    await publish(mstore, "emails")
    pruned = await seed_history(raw, "emails", 10, 2, "30 days")
    fresh = await seed_history(raw, "emails", 10, 0, "1 min")
    pruner = await asyncpg.connect(database_url)
    try:
        tx = pruner.transaction()
        await tx.start()
        await pruner.execute("TRUNCATE awa.jobs_done_2")
        result: list[int] = []

        async def move() -> None:
            result.extend(i for i, _ in await mstore.dlq.dlq_move(1000))

        async with anyio.create_task_group() as tg:
            tg.start_soon(move)
            await wait_blocked(raw, "awa.dead_letters")
            await tx.commit()
    finally:
        await pruner.close()
    assert sorted(result) == fresh
    for job_id in pruned:
        assert await where(raw, job_id) == []
    for job_id in fresh:
        assert await where(raw, job_id) == ["dead_letters"]


async def race_round(mstore: Store, raw: asyncpg.Connection, config: MaintenanceConfig) -> None:
    expired = await seed_history(raw, "emails", 60, 2, "2 hours")
    fresh = await seed_history(raw, "emails", 60, 0, "1 min")
    retried: set[int] = set()

    async def moves() -> None:
        branch = DeadLetterHold(None, batch=7)
        while True:
            if not (await branch.run_once(ctx_for(mstore, config=config))).more:
                return

    async def prune() -> None:
        for _ in range(3):
            await Rotate().run_once(ctx_for(mstore, config=config))
            await Cleanup(batch=5).run_once(ctx_for(mstore, config=config))

    async def operator() -> None:
        for job_id in fresh[::5]:
            try:
                await mstore.admin.retry_job(job_id)
                retried.add(job_id)
            except (awa.JobNotFound, awa.InvalidTransition):
                pass  # already moved to the hold: not a job any more

    async with anyio.create_task_group() as tg:
        tg.start_soon(moves)
        tg.start_soon(prune)
        tg.start_soon(operator)
    # Rows skipped because an operator's retry held them are taken by the next run.
    await DeadLetterHold(None).run_once(ctx_for(mstore, config=config))

    for job_id in fresh:
        expected = ["jobs"] if job_id in retried else ["dead_letters"]
        assert await where(raw, job_id) == expected, job_id
    for job_id in expired:
        assert await where(raw, job_id) in ([], ["dead_letters"]), job_id


async def test_moves_racing_rotate_cleanup_and_operator_retries_never_lose_a_job(
    mstore: Store, raw: asyncpg.Connection
) -> None:
    """Rounds of a real race: the branch moving in small pages, rotate pruning an expired
    slot, cleanup deleting expired failures row by row, and an operator retrying fresh
    failures through ``retry_job``. Every fresh failure ends in exactly one place (the hold
    or the live table); an expired one in at most one; no job is ever in two tables."""
    config = MaintenanceConfig(
        startup_jitter=0,
        retention={"completed": 7200.0, "failed": 3600.0, "cancelled": 7200.0},
    )
    await publish(mstore, "emails")
    for _ in range(4):
        await race_round(mstore, raw, config)
        await raw.execute("DELETE FROM awa.jobs")
        await raw.execute("DELETE FROM awa.dead_letters")
