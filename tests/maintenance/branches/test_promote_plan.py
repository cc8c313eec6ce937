"""Promotion reads the due jobs, not the whole future (issue 19).

A backlog of jobs scheduled far ahead sits in ``jobs_due_idx`` after the due ones. The
promote statement must bound its index scan by the due time, so a run with a handful of
due jobs reads a handful of index pages whatever the size of the future: here the same
five due jobs with 100 and with 20,000 jobs scheduled an hour ahead must read at most 1.2
times the buffers (plus a btree level). An earlier form compared ``run_at`` with a column
of a CTE, which PostgreSQL applies as a filter after the ordered index scan: every
future row was read on each run (1.7 s per run with 700k of them). Buffer counts from
EXPLAIN ANALYZE, no timings.
"""

from __future__ import annotations

import asyncpg
import pytest

from awa.db.queries import paired_queries
from support.big_tables import explain, index_searches, read_buffers, scans_of

_SQL = paired_queries("maintenance")


async def _promote_reads(
    conn: asyncpg.Connection, future: int, term: int | None
) -> tuple[int, int, list[str]]:
    """(buffers reading awa.jobs, index descents, scan types) of one promote run over five
    due jobs and ``future`` jobs scheduled an hour ahead, fenced by ``term`` (None: not)."""
    await conn.execute("TRUNCATE awa.jobs")
    await conn.execute(
        """
        INSERT INTO awa.jobs (kind, queue, state, priority, original_priority, max_attempts,
                              run_at, created_at)
        SELECT 'k', 'q', 'scheduled', 2, 2, 5,
               CASE WHEN g <= 5 THEN now() - interval '1 second'
                    ELSE now() + interval '1 hour' + g * interval '1 millisecond' END,
               now()
          FROM generate_series(1, $1::int + 5) g
        """,
        future,
    )
    await conn.execute("VACUUM ANALYZE awa.jobs")
    root = await explain(conn, _SQL["promote_due"].sql, 1000, None, term)
    return read_buffers(root, "jobs"), index_searches(root, "jobs"), scans_of(root, "jobs")


@pytest.mark.parametrize("fenced", [False, True], ids=["unfenced", "fenced"])
async def test_promotion_reads_the_due_jobs_not_the_future(
    raw: asyncpg.Connection, fenced: bool
) -> None:
    """Fenced by the current term (how the leader runs it, ADR 044) and unfenced (tick,
    tests): the fence must not change the plan of the scan."""
    term = await raw.fetchval("SELECT term FROM awa.leader_term") if fenced else None
    small, small_searches, _ = await _promote_reads(raw, 100, term)
    large, large_searches, scans = await _promote_reads(raw, 20_000, term)
    assert small_searches >= 1, "the scan of awa.jobs never ran (a stale term?)"
    assert "Seq Scan" not in scans, scans
    # One extra page per descent allows for a btree the larger table made a level deeper.
    assert large <= 1.2 * small + (large_searches - small_searches) + large_searches, (
        small,
        large,
        scans,
    )
