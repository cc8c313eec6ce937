"""``queue_stats``: writes depth and lag, changes no job.

Driven directly (no leader) in the seeded world of ``support.branch_world``: the branch
must change exactly the rows it should, and nothing else.
"""

from __future__ import annotations

from awa.maintenance.branches.queue_stats import QueueStats
from support.branch_world import World


async def test_queue_stats_writes_depth_and_lag_and_changes_no_job(world: World) -> None:
    await world.raw.execute(
        "INSERT INTO awa.queue_stats (queue, state, count, lag_s, updated_at)"
        " VALUES ('ghost', 'available', 9, 1, now()), ('default', 'running', 999, NULL, now())"
    )
    result, _, _, changed = await world.run(QueueStats())
    assert changed == set()
    expected = {
        (r["queue"], r["state"]): r["n"]
        for r in await world.raw.fetch(
            "SELECT queue, state::text AS state, count(*) AS n FROM awa.jobs GROUP BY 1, 2"
        )
    }
    rows = await world.raw.fetch("SELECT queue, state::text AS state, * FROM awa.queue_stats")
    assert {(r["queue"], r["state"]): r["count"] for r in rows} == expected
    assert result.rows == {"queue_states": len(expected)}
    lags = {r["state"]: r["lag_s"] for r in rows}
    assert 3500 < lags["available"] < 4000  # the oldest available job waited an hour
    assert all(lag is None for state, lag in lags.items() if state != "available")
