"""``queue_stats``: writes depth and lag, and the jobs finished since its previous run;
changes no job.

Driven directly (no leader) in the seeded world of ``support.branch_world``: the branch
must change exactly the rows it should, and nothing else.
"""

from __future__ import annotations

from typing import Any

import awa
from awa.admin import Admin
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


async def test_queue_stats_counts_the_jobs_finished_since_its_previous_run(world: World) -> None:
    """Throughput (migration 17): each finished job is counted in exactly one window, per
    queue and terminal state; a queue that finished nothing since reads 0, not its old
    count; every row carries the same window, the next starting where the last ended."""

    async def counts() -> dict[tuple[str, str], int]:
        rows = await world.raw.fetch(
            "SELECT queue, state::text AS state, finished FROM awa.queue_throughput"
        )
        return {(r["queue"], r["state"]): r["finished"] for r in rows}

    async def window() -> tuple[Any, Any]:
        (row,) = await world.raw.fetch("SELECT DISTINCT since, until FROM awa.queue_throughput")
        return row["since"], row["until"]

    await world.run(QueueStats())
    history = await world.raw.fetch(
        "SELECT queue, state::text AS state, count(*) AS n FROM awa.jobs_done GROUP BY 1, 2"
    )
    assert await counts() == {(r["queue"], r["state"]): r["n"] for r in history}
    first = await window()

    for n in range(3):
        await world.store.jobs.insert_job(awa.InsertParams("mailer", {"n": n}, queue="mail"))
    claimed = await world.store.jobs.claim_batch("mail", ["mailer"], 10, "throughput-test")
    assert len(claimed) == 3
    done = await world.store.jobs.complete_batch(
        [j.id for j in claimed], [j.run_lease for j in claimed], [{"ok": 1}] * 3
    )
    assert len(done) == 3
    await world.run(QueueStats())
    expected = {key: 0 for key in {(r["queue"], r["state"]) for r in history}}
    expected[("mail", "completed")] = 3
    assert await counts() == expected
    since, until = await window()
    assert since == first[1] and until > since  # the next window starts where the last ended

    admin = await Admin.open(world.url)
    try:
        finished = (await admin.maintenance.queue_stats())["finished"]
    finally:
        await admin.close()
    mail = next(r for r in finished if r["queue"] == "mail" and r["state"] == "completed")
    assert mail["finished"] == 3 and mail["window_s"] > 0
