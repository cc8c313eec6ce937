"""Retention and the ring agree: completed history, the bulk, goes by TRUNCATE (ADR 035).

With the default retentions (completed 1 day, failed and cancelled 7 days), a burst of jobs
is completed and failed through the store's real statements; the clock then moves past the
completed retention and ``cleanup`` and ``rotate`` run as the leader runs them. The
completed rows must be gone with not one row deleted from ``awa.jobs_done``
(``pg_stat_user_tables.n_tup_del``), and the failed rows, kept longer, must all still be
there (carried forward into the current slot).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import asyncpg

import awa
from awa.clock import FakeClock
from awa.config import MaintenanceConfig
from awa.maintenance import BranchContext
from awa.maintenance.branches.cleanup import Cleanup
from awa.maintenance.branches.rotate import Rotate
from awa.store import Store
from awa.store.attempts import FinishedAttempt

HOUR = 3600.0

_STATS = (
    "SELECT coalesce(sum(n_tup_del), 0) AS deleted, coalesce(sum(n_tup_ins), 0) AS inserted"
    " FROM pg_stat_user_tables WHERE schemaname = 'awa' AND relname LIKE 'jobs\\_done\\_%'"
)


async def _stats(raw: asyncpg.Connection, inserted_at_least: int) -> asyncpg.Record:
    """The history partitions' counters once the writers' statistics have reached the
    server (backends report them within a second or so of going idle)."""
    for _ in range(100):
        await raw.execute("SELECT pg_stat_clear_snapshot()")
        row = await raw.fetchrow(_STATS)
        assert row is not None
        if int(row["inserted"]) >= inserted_at_least:
            await asyncio.sleep(1.5)  # any delete reported with them has arrived too
            await raw.execute("SELECT pg_stat_clear_snapshot()")
            final = await raw.fetchrow(_STATS)
            assert final is not None
            return final
        await asyncio.sleep(0.1)
    raise AssertionError("history statistics never arrived")


async def test_completed_burst_goes_by_truncate_with_no_row_deleted(
    store: Store, raw: asyncpg.Connection
) -> None:
    start = await raw.fetchval("SELECT now()")
    assert isinstance(start, datetime)
    clock = FakeClock(start)
    ctx = BranchContext(store=store, clock=clock, config=MaintenanceConfig(startup_jitter=0))

    await store.jobs.insert_many([awa.InsertParams("work") for _ in range(500)])
    jobs = await store.jobs.claim_batch("default", ["work"], 500, "burst", clock.now())
    assert len(jobs) == 500
    done, failing = jobs[:480], jobs[480:]
    await store.jobs.complete_batch(
        [j.id for j in done], [j.run_lease for j in done], [None] * len(done), clock.now()
    )
    await store.jobs.finalize_batch(
        [FinishedAttempt(j.id, j.run_lease, awa.JobState.FAILED, {"m": "x"}) for j in failing],
        clock.now(),
    )
    assert await raw.fetchval("SELECT count(*) FROM awa.jobs_done") == 500

    clock.advance(5 * HOUR)  # past the ring's period (1 day / 6): the ring turns
    assert (await Rotate().run_once(ctx)).rows["rotated"] == 1
    clock.advance(2 * 24 * HOUR)  # past the completed retention, within the failed one
    cleaned = await Cleanup().run_once(ctx)
    rotated = await Rotate().run_once(ctx)

    assert cleaned.rows["history_deleted"] == 0
    assert rotated.rows["slots_pruned"] == 1 and rotated.rows["rows_carried"] == 20
    states = {
        r["state"]: r["n"]
        for r in await raw.fetch(
            "SELECT state::text AS state, count(*) AS n FROM awa.jobs_done GROUP BY 1"
        )
    }
    assert states == {"failed": 20}
    await store.close()  # its backends report their statistics as they exit
    stats = await _stats(raw, inserted_at_least=500 + 20)
    assert stats["deleted"] == 0
