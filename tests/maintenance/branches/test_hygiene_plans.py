"""The hygiene statements cost O(live rows), not O(table) (issue 19, ADR 035).

After a burst of jobs has gone through ``awa.jobs`` to history, the table's heap keeps
every page the burst allocated (a plain VACUUM empties them, it cannot give back pages
below the last live row). ``queue_stats``, ``refresh_admin_metadata`` and
``priority_aging`` read live rows through the live-state partial indexes: with the same 40
live jobs, a burst ten times larger must not make them read more than 1.2 times the
buffers of ``awa.jobs`` (plus one page per index descent: a btree the burst left a level
deeper), nor show a Seq Scan on it. Since migration 18 (ADR 039) the first two read the
maintained counts: ``refresh_admin_metadata`` reads ``awa.jobs`` not at all, and
``queue_stats`` only for the lag (a few claim-index descents per queue and kind).
The statement as a whole (with its writes: the index entries of aged rows, the stats
rows) may grow by the depth of the burst's btrees, a page or so per row written: at most
1.3 times. Buffer counts from
EXPLAIN ANALYZE, no timings.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import pytest

from awa.db.queries import paired_queries
from support.big_tables import buffers, burst, explain, index_searches, read_buffers, scans_of

_SQL = paired_queries("maintenance")

#: Each hygiene branch's statement and its arguments (the branch defaults).
STATEMENTS: dict[str, tuple[str, Callable[[], tuple[object, ...]]]] = {
    "queue_stats": ("refresh_queue_stats", lambda: (None, 60.0)),
    "refresh_admin_metadata": ("refresh_admin_metadata", lambda: (None,)),
    "priority_aging": ("age_priorities", lambda: (300.0, 1000, None)),
}

#: The statements that never read ``awa.jobs``: their live counts come from
#: ``awa.job_counts`` (migration 18, ADR 039).
NO_JOBS_READ = {"refresh_admin_metadata"}


async def _measure(database_url: str, history: int, name: str) -> tuple[int, int, int, list[str]]:
    """(buffers reading awa.jobs, its index descents, buffers in all, scan types on
    awa.jobs) of the branch's statement after a burst of ``history`` jobs."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("TRUNCATE awa.jobs, awa.jobs_done")
        await burst(conn, history)
        statement, args = STATEMENTS[name]
        if name == "queue_stats":
            # Its throughput count reads the jobs finished since its previous run (ADR 038):
            # O(work), so the burst is counted once, by this earlier run; the measured run
            # sees the steady state, where history that is not new costs nothing.
            await conn.execute(_SQL[statement].sql, *args())
        root = await explain(conn, _SQL[statement].sql, *args())
        return (
            read_buffers(root, "jobs"),
            index_searches(root, "jobs"),
            buffers(root),
            scans_of(root, "jobs"),
        )
    finally:
        await conn.close()


@pytest.mark.parametrize("name", sorted(STATEMENTS))
async def test_hygiene_reads_live_rows_not_the_burst(database_url: str, name: str) -> None:
    small_read, _, small, small_scans = await _measure(database_url, 20_000, name)
    big_read, descents, big, big_scans = await _measure(database_url, 200_000, name)
    if name in NO_JOBS_READ:
        assert small_scans == big_scans == [], (small_scans, big_scans)
    else:
        assert small_scans and "Seq Scan" not in small_scans + big_scans, (small_scans, big_scans)
    # One page more per index descent at most: the larger burst may leave a btree one
    # level deeper (O(log n) per descent); nothing else may grow with the burst.
    assert big_read <= 1.2 * small_read + descents, (name, small_read, big_read, descents)
    assert big <= 1.3 * small, (name, small, big)
