"""``queue_counts`` costs O(queues x states), not O(history) (migration 19, ADR 043).

Buffer counts from ``EXPLAIN (ANALYZE, BUFFERS)``, no timings: 25 times the history reads
the same buffers (the old query's grow with it, which is what this test would catch), the
history is never scanned, and the live jobs are read only by claim-index descents.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from awa.db.queries import paired_queries
from support.big_tables import buffers, burst, explain, plan_nodes
from support.queue_counts import OLD_QUEUE_COUNTS

_ADMIN = paired_queries("admin")
_MAINTENANCE = paired_queries("maintenance")


async def _plans(raw: asyncpg.Connection, history: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The executed plans of queue_counts, new and old, over ``history`` finished jobs
    and 40 live ones (three queues, seven kinds, the five live states), counts folded."""
    await raw.execute("TRUNCATE awa.jobs, awa.jobs_done")
    await burst(raw, history)
    await raw.execute(
        "INSERT INTO awa.queue_pauses (queue, paused_at, paused_by) VALUES ('q9', now(), 'test')"
        " ON CONFLICT DO NOTHING"
    )
    await raw.execute(_MAINTENANCE["refresh_queue_stats"].sql, None, 60.0)
    # What autovacuum does for these small tables: the dead rows the TRUNCATEs and the fold
    # left must not count against one size and not the other.
    await raw.execute(
        "VACUUM awa.job_counts, awa.job_count_deltas, awa.history_counts, awa.history_count_deltas"
    )
    now = datetime.now(UTC)
    assert [tuple(r) for r in await raw.fetch(_ADMIN["queue_counts"].sql, now)] == [
        tuple(r) for r in await raw.fetch(OLD_QUEUE_COUNTS, now)
    ]
    return (
        await explain(raw, _ADMIN["queue_counts"].sql, now),
        await explain(raw, OLD_QUEUE_COUNTS, now),
    )


async def test_queue_counts_buffers_do_not_grow_with_history(raw: asyncpg.Connection) -> None:
    small, old_small = await _plans(raw, 2_000)
    big, old_big = await _plans(raw, 50_000)
    assert buffers(big) <= 1.2 * buffers(small), (buffers(small), buffers(big))
    # The old query read the whole history: this test fails on it.
    assert buffers(old_big) > 5 * buffers(old_small), (buffers(old_small), buffers(old_big))
    for root in (small, big):
        tables = {str(n["Relation Name"]) for n in plan_nodes(root) if "Relation Name" in n}
        assert not {t for t in tables if t.startswith("jobs_done")}, tables
        jobs = [n for n in plan_nodes(root) if n.get("Relation Name") == "jobs"]
        assert jobs and {n["Node Type"] for n in jobs} == {"Index Only Scan"}
        assert {n["Index Name"] for n in jobs} == {"jobs_claim_idx"}
        # One row per (queue, kind, priority) range at most: 3 queues x 7 kinds x 4.
        assert sum(float(n["Actual Rows"]) * float(n.get("Actual Loops", 1)) for n in jobs) <= 84
