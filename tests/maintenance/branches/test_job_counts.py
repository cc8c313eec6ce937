"""Maintained live-job counts (migration 18, ADR 039): exact after every write path.

Statement triggers on ``awa.jobs`` append per-(queue, kind, state) deltas; ``queue_stats``
folds them into ``awa.job_counts``, ``refresh_admin_metadata`` reads the totals plus the
deltas still pending. Every test compares the
totals with an exact ``count(*)`` of ``awa.jobs``, after writes made by the real store and
runtime (never by hand, except where a test corrupts a total on purpose). The fold's cost
is checked with buffer counts from EXPLAIN, no timings.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import asyncpg

import awa
from awa.db.queries import paired_queries
from awa.model import InsertParams, JobState, hash_callback_token
from awa.store import FinishedAttempt, Rescheduled, Store
from awa.store.callbacks import ParkedAttempt
from awa.store.job_filter import JobFilter
from support.big_tables import buffers, explain, plan_nodes, scans_of

_SQL = paired_queries("maintenance")

Totals = dict[tuple[str, str, str], int]

_EXACT = "SELECT queue, kind, state::text AS state, count(*) AS n FROM awa.jobs GROUP BY 1, 2, 3"
_PENDING = (
    "SELECT queue, kind, state::text AS state, sum(n) AS n FROM"
    " (SELECT queue, kind, state, n FROM awa.job_counts"
    "  UNION ALL SELECT queue, kind, state, n FROM awa.job_count_deltas) t"
    " GROUP BY 1, 2, 3 HAVING sum(n) <> 0"
)
_STORED = "SELECT queue, kind, state::text AS state, n FROM awa.job_counts WHERE n <> 0"


def _totals(rows: list[asyncpg.Record]) -> Totals:
    return {(r["queue"], r["kind"], r["state"]): int(r["n"]) for r in rows}


async def assert_exact(raw: asyncpg.Connection, store: Store) -> Totals:
    """Totals plus pending deltas equal a recount; after a fold (``refresh_queue_stats``,
    the only statement that folds), the stored totals alone do, and the stats rows carry
    them; ``refresh_admin_metadata`` (which reads totals plus pending deltas) agrees."""
    exact = _totals(await raw.fetch(_EXACT))
    assert _totals(await raw.fetch(_PENDING)) == exact
    rows = await store.maintenance.refresh_queue_stats(None)
    assert await raw.fetchval("SELECT count(*) FROM awa.job_count_deltas") == 0
    assert _totals(await raw.fetch(_STORED)) == exact
    per_state: dict[tuple[str, str], int] = {}
    for (queue, _, state), n in exact.items():
        per_state[(queue, state)] = per_state.get((queue, state), 0) + n
    assert {(str(r["queue"]), str(r["state"])): int(r["count"]) for r in rows} == per_state
    await store.maintenance.refresh_admin_metadata(None)
    live = await raw.fetch("SELECT queue, kind, live_jobs FROM awa.admin_metadata")
    per_pair: dict[tuple[str, str], int] = {}
    for (queue, kind, _), n in exact.items():
        per_pair[(queue, kind)] = per_pair.get((queue, kind), 0) + n
    assert {(r["queue"], r["kind"]): r["live_jobs"] for r in live if r["live_jobs"]} == per_pair
    return exact


async def test_counts_follow_every_store_write_path(store: Store, raw: asyncpg.Connection) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    # Single inserts (available, scheduled, unique), then one COPY of 60 jobs.
    first = await store.jobs.insert_job(InsertParams("a", queue="q1"))
    await store.jobs.insert_job(InsertParams("a", queue="q1", run_at=later))
    await store.jobs.insert_job(InsertParams("u", queue="q1", unique_key="one"))
    await store.jobs.insert_job(InsertParams("u", queue="q1", unique_key="one"))  # duplicate
    await store.jobs.insert_many(
        [InsertParams("b", {"i": i}, queue="q2") for i in range(50)]
        + [InsertParams("c", queue="q2", run_at=later) for _ in range(10)]
    )
    await assert_exact(raw, store)

    # Claim, beat, complete, fail, retry, snooze.
    claimed = await store.jobs.claim_batch("q2", ["b"], 20, "counts-test")
    assert len(claimed) == 20
    await store.jobs.heartbeat([j.id for j in claimed], [j.run_lease for j in claimed], [None] * 20)
    await assert_exact(raw, store)
    await store.jobs.complete_batch(
        [j.id for j in claimed[:5]], [j.run_lease for j in claimed[:5]], [None] * 5
    )
    error = {"message": "boom"}
    await store.jobs.finalize_batch(
        [FinishedAttempt(j.id, j.run_lease, JobState.FAILED, error) for j in claimed[5:8]]
    )
    await store.jobs.reschedule_batch(
        [
            Rescheduled(j.id, j.run_lease, JobState.RETRYABLE, later, error, False)
            for j in claimed[8:10]
        ]
        + [
            Rescheduled(j.id, j.run_lease, JobState.SCHEDULED, later, None, True)
            for j in claimed[10:12]
        ]
    )
    await assert_exact(raw, store)

    # A callback: running -> waiting_external (park) -> history (resolved).
    parked = claimed[14]
    callback = uuid.uuid4()
    await store.callbacks.register_callback(
        parked.id, parked.run_lease, callback, hash_callback_token("tok"), 600.0, False
    )
    assert await store.callbacks.park_jobs(
        [ParkedAttempt(parked.id, parked.run_lease, str(callback))]
    ) == {parked.id}
    assert (await assert_exact(raw, store))[("q2", "b", "waiting_external")] == 1
    await store.callbacks.resolve_callback(callback, "tok", "complete", payload="{}")
    await assert_exact(raw, store)

    # Rescue (a running attempt retried), operator cancel and retry, promotion, aging.
    stale = [(j.id, j.run_lease) for j in claimed[12:14]]
    await store.recovery.rescue(stale, from_states=["running"], reason="test", retry_base_delay=0.0)
    await store.admin.cancel_job(first.id, "no longer wanted")
    await store.admin.retry_job(first.id)  # back from history into awa.jobs
    await store.admin.retry_job(claimed[8].id)  # retryable -> available now
    await store.maintenance.promote(1000, later + timedelta(hours=1))
    await store.maintenance.age_priorities(0.0, 1000, later + timedelta(days=1))
    await assert_exact(raw, store)

    # Bulk admin actions, then the ring: a rotation's TRUNCATE of history leaves live alone.
    assert (
        await store.admin.bulk.apply("cancel", JobFilter(queue="q2", kind="c"), confirmed=100)
    ).acted > 0
    assert (
        await store.admin.bulk.apply(
            "retry", JobFilter(queue="q2", state=JobState.CANCELLED), confirmed=100
        )
    ).acted > 0
    assert (
        await store.admin.bulk.apply(
            "discard", JobFilter(queue="q2", state=JobState.AVAILABLE), confirmed=100, batch=7
        )
    ).acted > 0
    slot = (await raw.fetchval("SELECT current_slot FROM awa.ring_state") + 3) % 8
    assert await store.maintenance.truncate_slot(slot)
    await assert_exact(raw, store)

    # TRUNCATE awa.jobs resets the totals and the pending deltas; writes go on from zero.
    await store.jobs.insert_job(InsertParams("a", queue="q1"))  # pending at the TRUNCATE
    await raw.execute("TRUNCATE awa.jobs")
    assert await raw.fetchval("SELECT count(*) FROM awa.job_counts") == 0
    assert await raw.fetchval("SELECT count(*) FROM awa.job_count_deltas") == 0
    await store.jobs.insert_many([InsertParams("d", queue="q3") for _ in range(4)])
    assert await assert_exact(raw, store) == {("q3", "d", "available"): 4}


async def test_counts_follow_a_real_runtime(database_url: str, raw: asyncpg.Connection) -> None:
    """Completions, failures, retries, snoozes and handler cancels as the runtime writes
    them (completion buffer, batched finalize), checked once the jobs settle."""
    client = awa.Client(database_url)

    @client.handler("ok")
    async def ok(ctx: awa.JobContext) -> None:
        return None

    @client.handler("boom")
    async def boom(ctx: awa.JobContext) -> None:
        raise RuntimeError("boom")

    @client.handler("nap")
    async def nap(ctx: awa.JobContext) -> awa.Snooze:
        return awa.Snooze(timedelta(hours=1))

    @client.handler("stop")
    async def stop(ctx: awa.JobContext) -> awa.Cancel:
        return awa.Cancel("not needed")

    async with client:
        for kind, attempts in (("ok", 5), ("boom", 1), ("boom", 3), ("nap", 5), ("stop", 5)):
            for _ in range(6):
                await client.insert(kind, None, max_attempts=attempts)
        config = awa.RuntimeConfig(queues={"default": 4}, poll_interval=0.2)
        async with awa.Runtime(client, config):
            with anyio.fail_after(30):
                for _ in iter(int, 1):  # until no job is waiting or running
                    busy = await raw.fetchval(
                        "SELECT count(*) FROM awa.jobs WHERE state IN ('available', 'running')"
                    )
                    if not busy:
                        break
                    await anyio.sleep(0.05)
        store = await Store.open(database_url, max_size=2)
        try:
            exact = await assert_exact(raw, store)
        finally:
            await store.close()
    assert exact == {("default", "boom", "retryable"): 6, ("default", "nap", "scheduled"): 6}


async def test_recount_repairs_a_corrupted_total(store: Store, raw: asyncpg.Connection) -> None:
    await store.jobs.insert_many([InsertParams("a", queue=f"q{i % 3}") for i in range(30)])
    await assert_exact(raw, store)
    # A total drifts (a write that bypassed the triggers), and a stray delta is pending.
    await raw.execute("UPDATE awa.job_counts SET n = n + 5 WHERE queue = 'q1'")
    await raw.execute("INSERT INTO awa.job_count_deltas VALUES ('ghost', 'g', 'available', 2)")
    await store.maintenance.refresh_queue_stats(None)
    assert _totals(await raw.fetch(_STORED)) != _totals(await raw.fetch(_EXACT))
    assert await raw.fetchval("SELECT awa.recount_jobs()") == 3
    await assert_exact(raw, store)


async def test_a_statement_appends_one_delta_per_group(
    store: Store, raw: asyncpg.Connection
) -> None:
    """Per statement, not per job: a COPY of 100 jobs of one kind is one row, a claim of
    them two (-available, +running), and a heartbeat (state unchanged) none."""
    await store.jobs.insert_many([InsertParams("a") for _ in range(100)])
    assert await raw.fetchval("SELECT count(*) FROM awa.job_count_deltas") == 1
    await store.maintenance.refresh_queue_stats(None)
    claimed = await store.jobs.claim_batch("default", ["a"], 100, "counts-test")
    rows = await raw.fetch("SELECT state::text AS state, n FROM awa.job_count_deltas")
    assert {(r["state"], r["n"]) for r in rows} == {("available", -100), ("running", 100)}
    await store.maintenance.refresh_queue_stats(None)
    await store.jobs.heartbeat(
        [j.id for j in claimed], [j.run_lease for j in claimed], [None] * 100
    )
    assert await raw.fetchval("SELECT count(*) FROM awa.job_count_deltas") == 0


async def test_concurrent_writers_leave_exact_totals(
    database_url: str, raw: asyncpg.Connection
) -> None:
    """Four stores (own connections) insert, claim, complete and fail at once while a
    fifth folds over and over: no delta lost or counted twice, no deadlock."""
    stores = [await Store.open(database_url, max_size=2) for _ in range(5)]
    done = asyncio.Event()

    async def writer(store: Store, me: int) -> None:
        for round_ in range(15):
            await store.jobs.insert_many(
                [InsertParams(f"k{round_ % 3}", queue=f"q{me % 2}") for _ in range(20)]
            )
            await store.jobs.insert_job(InsertParams("one", queue=f"q{me % 2}"))
            claimed = await store.jobs.claim_batch(
                f"q{me % 2}", ["k0", "k1", "k2", "one"], 12, f"w{me}"
            )
            await store.jobs.complete_batch(
                [j.id for j in claimed[:6]], [j.run_lease for j in claimed[:6]], [None] * 6
            )
            await store.jobs.finalize_batch(
                [FinishedAttempt(j.id, j.run_lease, JobState.FAILED, None) for j in claimed[6:9]]
            )

    async def folder(store: Store) -> int:
        folds = 0
        while not done.is_set():
            await store.maintenance.refresh_queue_stats(None)
            await store.maintenance.refresh_admin_metadata(None)
            folds += 1
        return folds

    try:
        fold_task = asyncio.create_task(folder(stores[4]))
        await asyncio.gather(*(writer(s, i) for i, s in enumerate(stores[:4])))
        done.set()
        assert await fold_task > 1
        exact = await assert_exact(raw, stores[4])
        assert sum(exact.values()) == 4 * 15 * (21 - 9)
    finally:
        for s in stores:
            await s.close()


async def _fold_plan(
    raw: asyncpg.Connection, live: int, deltas: int, statement: str = "refresh_admin_metadata"
) -> dict[str, Any]:
    """The plan of ``statement`` with ``live`` jobs folded already and ``deltas``
    single-job statements pending."""
    await raw.execute("TRUNCATE awa.jobs")
    await raw.execute(
        "INSERT INTO awa.jobs (kind, queue, state, priority, original_priority, max_attempts,"
        " run_at, created_at) SELECT 'k' || g % 7, 'q' || g % 3, 'available', 2, 2, 5, now(),"
        " now() FROM generate_series(1, $1::int) g",
        live,
    )
    await raw.execute("VACUUM ANALYZE awa.jobs")
    await raw.execute(_SQL["refresh_queue_stats"].sql, None, 60.0)
    # What autovacuum does for these small tables: the earlier measurements' dead rows
    # (the TRUNCATE's reset) must not count against this one.
    await raw.execute("VACUUM awa.job_counts, awa.job_count_deltas, awa.admin_metadata")
    for i in range(deltas):
        await raw.execute(
            "INSERT INTO awa.jobs (kind, queue, state, priority, original_priority,"
            " max_attempts, run_at, created_at) VALUES ($1, 'q0', 'scheduled', 2, 2, 5,"
            " now() + interval '1 hour', now())",
            f"new{i}",
        )
    args = (None, 60.0) if statement == "refresh_queue_stats" else (None,)
    return await explain(raw, _SQL[statement].sql, *args)


def _deltas_read(root: dict[str, Any]) -> int:
    return sum(
        round(float(n.get("Actual Rows", 0)) * float(n.get("Actual Loops", 1)))
        for n in plan_nodes(root)
        if n.get("Relation Name") == "job_count_deltas" and str(n["Node Type"]).endswith("Scan")
    )


async def test_the_fold_costs_deltas_not_live_rows(raw: asyncpg.Connection) -> None:
    small = await _fold_plan(raw, 1_000, 20)
    big = await _fold_plan(raw, 100_000, 20)
    more = await _fold_plan(raw, 1_000, 200)
    assert scans_of(small, "jobs") == scans_of(big, "jobs") == []
    assert _deltas_read(small) == _deltas_read(big) == 20 and _deltas_read(more) == 200
    # A hundred times the live jobs: the same buffers, within a few pages (the heaps and
    # btrees of the small count tables). Ten times the deltas: more (each is a new pair).
    assert buffers(big) <= 1.1 * buffers(small), (buffers(small), buffers(big))
    assert buffers(more) > buffers(small), (buffers(small), buffers(more))
    # The fold itself (refresh_queue_stats) takes exactly the pending deltas.
    folds = [await _fold_plan(raw, 1_000, n, "refresh_queue_stats") for n in (20, 200)]
    assert [_deltas_read(root) for root in folds] == [20, 200]


async def test_queue_stats_lag_reads_the_claim_index(raw: asyncpg.Connection) -> None:
    """The lag (oldest available job per queue) is a few descents of jobs_claim_idx per
    (queue, kind), never a scan of the available jobs: 100 times the jobs read the same
    rows, and the value matches min(run_at)."""

    async def plan(live: int) -> dict[str, Any]:
        await raw.execute("TRUNCATE awa.jobs")
        await raw.execute(
            "INSERT INTO awa.jobs (kind, queue, state, priority, original_priority,"
            " max_attempts, run_at, created_at) SELECT 'k' || g % 7, 'q' || g % 3,"
            " 'available', 1 + g % 4, 1 + g % 4, 5, now() - g * interval '1 s', now()"
            " FROM generate_series(1, $1::int) g",
            live,
        )
        await raw.execute("VACUUM ANALYZE awa.jobs")
        return await explain(raw, _SQL["refresh_queue_stats"].sql, None, 60.0)

    small, big = await plan(1_000), await plan(100_000)
    for root in (small, big):
        jobs = [n for n in plan_nodes(root) if n.get("Relation Name") == "jobs"]
        assert jobs and {n["Node Type"] for n in jobs} == {"Index Only Scan"}
        assert {n["Index Name"] for n in jobs} == {"jobs_claim_idx"}
        # One row per (queue, kind, priority) range at most: 3 queues x 7 kinds x 4.
        assert sum(float(n["Actual Rows"]) * float(n.get("Actual Loops", 1)) for n in jobs) <= 84
    async with raw.transaction():  # one now() for both
        rows = await raw.fetch(_SQL["refresh_queue_stats"].sql, None, 60.0)
        oldest = await raw.fetch(
            "SELECT queue, extract(epoch FROM now() - min(run_at)) AS lag FROM awa.jobs GROUP BY 1"
        )
    assert {r["queue"]: float(r["lag_s"]) for r in rows} == {
        r["queue"]: float(r["lag"]) for r in oldest
    }
