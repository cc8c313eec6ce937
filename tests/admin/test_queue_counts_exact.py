"""``queue_counts`` from maintained counts (migration 19, ADR 043): exact after every path
that writes the history.

Each step writes through the real store (never by hand, except a statement naming a ring
partition directly and a total corrupted on purpose), then compares ``queue_counts`` with
the old exact GROUP BY query and the per-slot history totals with a recount
(``support.queue_counts``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from awa.model import InsertParams, JobState
from awa.store import FinishedAttempt, Store
from awa.store.dlq import DeadLetterPolicy
from awa.store.job_filter import JobFilter
from awa.store.ring import RingPass
from support.queue_counts import assert_counts_exact, history_exact, history_pending

KEEP = {"completed": 3600.0, "failed": 7 * 86400.0, "cancelled": 7 * 86400.0}


async def _finish(
    store: Store, queue: str, kind: str, done: int, failed: int, cancelled: int
) -> None:
    """Insert and claim ``done + failed + cancelled`` jobs, then finish them the three ways
    the runtime does (a completion batch, a failure batch, a cancel batch)."""
    total = done + failed + cancelled
    await store.jobs.insert_many([InsertParams(kind, {"i": i}, queue=queue) for i in range(total)])
    claimed = await store.jobs.claim_batch(queue, [kind], total, "counts-test")
    assert len(claimed) == total
    ok = claimed[:done]
    await store.jobs.complete_batch([j.id for j in ok], [j.run_lease for j in ok], [None] * done)
    await store.jobs.finalize_batch(
        [
            FinishedAttempt(j.id, j.run_lease, JobState.FAILED, {"m": "x"})
            for j in claimed[done : done + failed]
        ]
        + [
            FinishedAttempt(j.id, j.run_lease, JobState.CANCELLED, None)
            for j in claimed[done + failed :]
        ]
    )


async def _advance(store: Store, to: int) -> None:
    async def body(ring: RingPass) -> None:
        state = await ring.lock()
        assert state is not None
        assert await ring.advance(to, state.current_slot)

    await store.maintenance.ring_pass(body)


async def test_counts_follow_every_history_write_path(
    store: Store, raw: asyncpg.Connection
) -> None:
    now = datetime.now(UTC)
    # Completions, failures and cancels into slot 0, some jobs left live (lag, other states).
    await _finish(store, "q1", "a", 20, 5, 3)
    await _finish(store, "q2", "b", 7, 2, 0)
    await store.jobs.insert_many([InsertParams("a", queue="q1") for _ in range(4)])
    await store.jobs.insert_job(InsertParams("a", queue="q3", run_at=now + timedelta(hours=1)))
    await assert_counts_exact(raw, store, now)

    # Slot 1 becomes current: more history there.
    await _advance(store, 1)
    await _finish(store, "q1", "a", 10, 4, 1)
    assert {slot for slot, _, _ in await history_exact(raw)} == {0, 1}
    await assert_counts_exact(raw, store, now)

    # Operator actions on finished jobs: cancel a live one, retry and discard finished ones
    # (one by one and in bulk).
    live = await raw.fetchval("SELECT id FROM awa.jobs WHERE queue = 'q1' LIMIT 1")
    await store.admin.cancel_job(live, "not wanted")
    finished = [
        r["id"] for r in await raw.fetch("SELECT id FROM awa.jobs_done ORDER BY id LIMIT 3")
    ]
    await store.admin.retry_job(finished[0])
    await store.admin.discard_job(finished[1])
    await assert_counts_exact(raw, store, now)
    bulk = store.admin.bulk
    assert (
        await bulk.apply("retry", JobFilter(queue="q2", state=JobState.FAILED), confirmed=100)
    ).acted == 2
    assert (
        await bulk.apply(
            "discard", JobFilter(queue="q2", state=JobState.COMPLETED), confirmed=100, batch=3
        )
    ).acted == 7
    await assert_counts_exact(raw, store, now)

    # Dead letters: failed jobs of a queue with a policy leave the history.
    await store.dlq.dlq_upsert_policies([DeadLetterPolicy("q1", 86400.0)], "counts-test")
    assert len(await store.dlq.dlq_move(100)) == 9
    await assert_counts_exact(raw, store, now)

    # Cleanup's row-by-row delete of a state kept for less than the ring (cancelled here).
    await _finish(store, "q2", "b", 0, 0, 4)
    assert (
        await store.maintenance.delete_expired_history(
            "cancelled", 0.0, 1000, now + timedelta(hours=1)
        )
        > 0
    )
    await assert_counts_exact(raw, store, now)

    # The ring: slot 2 current, slot 1 carried (its failed rows are kept, completed ones
    # expired as of `later`) and TRUNCATEd in one savepoint; then slot 0 TRUNCATEd whole.
    await _finish(store, "q1", "a", 0, 3, 0)  # failed rows in slot 1 (no policy now)
    await store.dlq.dlq_orphan_policies([], 0.0, now + timedelta(days=1))
    await _advance(store, 2)
    later = now + timedelta(hours=2)
    carried = await store.maintenance.ring_pass(lambda ring: ring.carry(1, 2, KEEP, later))
    assert carried == 3  # slot 1's failed rows, kept a week
    assert await raw.fetchval("SELECT count(*) FROM awa.jobs_done WHERE slot = 1") == 0
    await assert_counts_exact(raw, store, now)
    assert await store.maintenance.truncate_slot(0)
    exact = await assert_counts_exact(raw, store, now)
    assert {slot for slot, _, _ in exact} <= {2}

    # A statement naming a ring partition directly fires that partition's triggers.
    await _advance(store, 3)
    await _finish(store, "q4", "c", 6, 2, 0)
    await raw.execute("DELETE FROM awa.jobs_done_3 WHERE state = 'failed'")
    await raw.execute("UPDATE awa.jobs_done_3 SET queue = 'q5' WHERE id % 2 = 0")
    await assert_counts_exact(raw, store, now)

    # TRUNCATE of the whole history: every partition's trigger resets its slot.
    await _finish(store, "q4", "c", 2, 0, 0)  # pending at the TRUNCATE
    await raw.execute("TRUNCATE awa.jobs_done")
    assert await history_pending(raw) == {}
    assert await raw.fetchval("SELECT count(*) FROM awa.history_count_deltas") == 0
    await _finish(store, "q6", "d", 3, 0, 0)
    assert await assert_counts_exact(raw, store, now) == {(3, "q6", "completed"): 3}


async def test_one_delta_row_per_group_of_a_statement(
    store: Store, raw: asyncpg.Connection
) -> None:
    """A completion of 50 jobs of one queue appends one history delta row, not 50."""
    await store.jobs.insert_many([InsertParams("a") for _ in range(50)])
    claimed = await store.jobs.claim_batch("default", ["a"], 50, "counts-test")
    await store.maintenance.refresh_queue_stats(None)
    await store.jobs.complete_batch(
        [j.id for j in claimed], [j.run_lease for j in claimed], [None] * 50
    )
    rows = await raw.fetch(
        "SELECT slot, queue, state::text AS state, n FROM awa.history_count_deltas"
    )
    assert [tuple(r) for r in rows] == [(0, "default", "completed", 50)]


async def test_recount_history_repairs_a_corrupted_total(
    store: Store, raw: asyncpg.Connection
) -> None:
    now = datetime.now(UTC)
    await _finish(store, "q1", "a", 6, 2, 1)
    await assert_counts_exact(raw, store, now)
    # A total drifts (a write that bypassed the triggers), and a stray delta is pending.
    await raw.execute("UPDATE awa.history_counts SET n = n + 5 WHERE state = 'completed'")
    await raw.execute("INSERT INTO awa.history_count_deltas VALUES (4, 'ghost', 'failed', 2)")
    assert await history_pending(raw) != await history_exact(raw)
    assert await raw.fetchval("SELECT awa.recount_history()") == 3
    await assert_counts_exact(raw, store, now)


async def test_concurrent_completions_folds_and_rotations_stay_exact(
    database_url: str, raw: asyncpg.Connection
) -> None:
    """Three stores complete, fail and cancel jobs while a fourth folds over and over and a
    fifth rotates the ring (advance, then TRUNCATE a slot no longer current): no delta
    lost, counted twice or left behind for a truncated slot, and no deadlock."""
    stores: list[Store] = []
    done = asyncio.Event()

    async def writer(store: Store, me: int) -> None:
        for _ in range(12):
            await _finish(store, f"q{me}", f"k{me}", 8, 2, 1)

    async def folder(store: Store) -> int:
        folds = 0
        while not done.is_set():
            await store.maintenance.refresh_queue_stats(None)
            await store.admin.queue_counts()
            folds += 1
        return folds

    async def rotator(store: Store) -> int:
        """Rotates until the writers are done; returns how many TRUNCATEs emptied a slot
        that held rows (the race this test is about needs some)."""
        emptied = 0
        while not done.is_set():

            async def body(ring: RingPass) -> bool:
                state = await ring.lock()
                assert state is not None
                new = (state.current_slot + 1) % 8
                assert await ring.advance(new, state.current_slot)
                old = (new + 5) % 8
                held = not await ring.slot_is_empty(old)
                return held and await ring.truncate(old, lock_timeout=2.0)

            emptied += await store.maintenance.ring_pass(body)
            await asyncio.sleep(0.01)
        return emptied

    tasks: list[asyncio.Task[int]] = []
    try:
        stores.extend([await Store.open(database_url, max_size=2) for _ in range(5)])
        tasks = [asyncio.create_task(folder(stores[3])), asyncio.create_task(rotator(stores[4]))]
        await asyncio.gather(*(writer(s, i) for i, s in enumerate(stores[:3])))
        done.set()
        folds, emptied = await asyncio.gather(*tasks)
        assert folds > 1 and emptied > 0, (folds, emptied)
        await assert_counts_exact(raw, stores[3], datetime.now(UTC))
    finally:
        done.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for s in stores:
            await s.close()
