"""Claims stay on the index when kinds nobody handles crowd a queue (issue 19, ADR 035).

200k available jobs of a kind the claiming runtime does not handle, queued ahead of its
own (higher priority, older) in the same queue, used to make every claim a Seq Scan +
Sort. The claim now reads one range of ``jobs_claim_idx`` per handled kind: its buffers
with that backlog at the head of its queue stay within 1.2 times those with the same
backlog in another queue (the same table size, so the same btree depths for the rows the
claim writes: what is compared is the crowding alone). The ordering across kinds,
partial batches and SKIP LOCKED are checked through the store's real claim.
"""

from __future__ import annotations

import asyncpg

from awa.db.queries import paired_queries
from awa.store import Store
from support.big_tables import buffers, explain, read_buffers, scans_of

_CLAIM = paired_queries("jobs")["claim_batch"].sql


async def _insert(
    conn: asyncpg.Connection,
    kind: str,
    count: int,
    priority: int,
    age_s: float,
    queue: str = "shared",
) -> None:
    await conn.execute(
        "INSERT INTO awa.jobs (kind, queue, state, priority, original_priority, max_attempts,"
        " run_at, created_at) SELECT $1, $5, 'available', $2, $2, 5,"
        " now() - make_interval(secs => $3) + g * interval '1 ms', now()"
        " FROM generate_series(1, $4::int) g",
        kind,
        priority,
        age_s,
        count,
        queue,
    )


async def _claim_plan(conn: asyncpg.Connection) -> tuple[int, int, list[str], int]:
    root = await explain(conn, _CLAIM, "shared", ["work", "other"], 100, "explain", None)
    return buffers(root), read_buffers(root, "jobs"), scans_of(root, "jobs"), root["Actual Rows"]


async def test_unhandled_backlog_does_not_change_the_claims_cost(raw: asyncpg.Connection) -> None:
    await _insert(raw, "work", 2000, 2, 600)
    await _insert(raw, "other", 2000, 2, 600)
    await _insert(raw, "nobody_handles_this", 200_000, 1, 3600, queue="elsewhere")
    await raw.execute("VACUUM ANALYZE awa.jobs")
    without, without_read, scans, claimed = await _claim_plan(raw)
    assert claimed == 100 and "Seq Scan" not in scans, scans

    await raw.execute("UPDATE awa.jobs SET queue = 'shared' WHERE queue = 'elsewhere'")
    await raw.execute("VACUUM ANALYZE awa.jobs")
    crowded, crowded_read, scans, claimed = await _claim_plan(raw)
    assert claimed == 100 and "Seq Scan" not in scans, scans
    assert crowded_read <= 1.2 * without_read, (without_read, crowded_read)
    assert crowded <= 1.2 * without, (without, crowded)


async def test_claims_merge_kinds_in_dispatch_order(store: Store, raw: asyncpg.Connection) -> None:
    """Across handled kinds the batch is the first jobs by (priority, run_at, id); a kind
    the runtime does not handle is left alone even at the head of the queue."""
    await _insert(raw, "ignored", 50, 1, 7200)
    await _insert(raw, "a", 30, 3, 3600)  # low priority, oldest
    await _insert(raw, "b", 30, 2, 60)
    await _insert(raw, "a", 30, 2, 120)  # older than b's, same priority
    expected = [
        r["id"]
        for r in await raw.fetch(
            "SELECT id FROM awa.jobs WHERE kind IN ('a', 'b')"
            " ORDER BY priority, run_at, id LIMIT 45"
        )
    ]
    jobs = await store.jobs.claim_batch("shared", ["b", "a", "a"], 45, "me")
    assert sorted(j.id for j in jobs) == sorted(expected)
    assert {j.kind for j in jobs} == {"a", "b"}
    left = await raw.fetchval("SELECT count(*) FROM awa.jobs WHERE state = 'available'")
    assert left == 50 + 90 - 45


async def test_claims_skip_rows_another_claimer_holds(
    store: Store, raw: asyncpg.Connection
) -> None:
    """Rows locked by another transaction are skipped, and the claim walks on down the
    kind's range: a full batch, none of the held rows."""
    await _insert(raw, "a", 40, 2, 600)
    head = [r["id"] for r in await raw.fetch("SELECT id FROM awa.jobs ORDER BY run_at LIMIT 10")]
    tx = raw.transaction()
    await tx.start()
    try:
        await raw.execute("SELECT 1 FROM awa.jobs WHERE id = ANY($1) FOR UPDATE", head)
        jobs = await store.jobs.claim_batch("shared", ["a"], 20, "me")
    finally:
        await tx.rollback()
    assert len(jobs) == 20
    assert not {j.id for j in jobs} & set(head)
    assert len(await store.jobs.claim_batch("shared", ["a"], 100, "me")) == 20


async def test_a_held_head_of_one_kind_leaves_the_claim_the_other_kinds_jobs(
    store: Store, raw: asyncpg.Connection
) -> None:
    """Another claimer holds every candidate of the head, all of kind ``a``; a job of
    kind ``b`` further down is free: the claim takes it rather than coming back empty
    (found by the stateful contract test: a fill limited to the head's kinds returned [])."""
    await _insert(raw, "a", 4, 1, 600)  # the head: priority 1
    await _insert(raw, "b", 1, 3, 600)  # free, but last in dispatch order
    held = [r["id"] for r in await raw.fetch("SELECT id FROM awa.jobs WHERE kind = 'a'")]
    tx = raw.transaction()
    await tx.start()
    try:
        await raw.execute("SELECT 1 FROM awa.jobs WHERE id = ANY($1) FOR UPDATE", held)
        jobs = await store.jobs.claim_batch("shared", ["a", "b"], 1, "me")
    finally:
        await tx.rollback()
    assert [j.kind for j in jobs] == ["b"]
