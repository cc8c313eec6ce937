"""``insert_claiming`` (ADR 045) costs the same whatever waits in the queue.

Its backlog probe must read one ``jobs_claim_idx`` range per handled kind and stop at the
first row: a semi-join planned as a hash over the queue's available jobs, or a Seq Scan,
would make every producer's insert O(backlog). With 100k available jobs behind the new one
(less urgent), 100k of a kind nobody here handles at the head of the queue, and 100k in
another queue, the statement touches no more buffers than with an empty table, give or
take the btree levels the rows it writes descend.
"""

from __future__ import annotations

import asyncpg

from awa.db.queries import paired_queries
from support.big_tables import buffers, explain, read_buffers, scans_of

_INSERT = paired_queries("jobs")["insert_claiming"].sql


async def _backlog(conn: asyncpg.Connection, kind: str, queue: str, priority: int) -> None:
    await conn.execute(
        "INSERT INTO awa.jobs (kind, queue, state, priority, original_priority, max_attempts,"
        " run_at, created_at) SELECT $1, $2, 'available', $3, $3, 5,"
        " now() - interval '1 hour' + g * interval '1 ms', now()"
        " FROM generate_series(1, 100000) g",
        kind,
        queue,
        priority,
    )


_ARGS: tuple[object, ...] = (
    "work",
    "shared",
    "{}",
    2,
    None,
    5,
    None,
    [],
    "{}",
    None,
    ["work", "other"],
    "me",
)


async def _plan(conn: asyncpg.Connection) -> tuple[int, int, list[str]]:
    root = await explain(conn, _INSERT, *_ARGS)
    return buffers(root), read_buffers(root, "jobs"), scans_of(root, "jobs")


async def _state(conn: asyncpg.Connection) -> str:
    """The state the statement gives the new job (rolled back)."""
    tx = conn.transaction()
    await tx.start()
    try:
        row = await conn.fetchrow(_INSERT, *_ARGS)
    finally:
        await tx.rollback()
    assert row is not None
    return str(row["state"])


async def test_a_backlog_does_not_change_the_cost_of_an_insert(raw: asyncpg.Connection) -> None:
    await raw.execute("ANALYZE awa.jobs")
    empty, empty_read, _ = await _plan(raw)  # any plan reads an empty table for nothing

    await _backlog(raw, "work", "shared", 3)  # handled, but behind a priority-2 insert
    await _backlog(raw, "nobody_handles_this", "shared", 1)  # at the head, not ours
    await _backlog(raw, "work", "elsewhere", 1)  # another queue
    await raw.execute("VACUUM ANALYZE awa.jobs")
    crowded, crowded_read, scans = await _plan(raw)
    assert "Seq Scan" not in scans, scans
    # A few pages per btree level the inserted row's index entries descend, not the backlog.
    assert crowded_read <= empty_read + 8, (empty_read, crowded_read)
    assert crowded <= empty + 16, (empty, crowded)
    assert await _state(raw) == "running"


async def test_the_probe_sees_a_job_ahead_and_inserts_available(raw: asyncpg.Connection) -> None:
    await _backlog(raw, "other", "shared", 2)  # a handled kind at the same priority
    await raw.execute("VACUUM ANALYZE awa.jobs")
    _, _, scans = await _plan(raw)
    assert "Seq Scan" not in scans, scans
    assert await _state(raw) == "available"
