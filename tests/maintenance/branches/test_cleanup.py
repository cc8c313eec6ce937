"""``cleanup``: deletes only expired history kept for less than completed jobs, in pages,
then runs hooks; never completed history (the ring TRUNCATEs it, ADR 035).

Driven directly (no leader) in the seeded world of ``support.branch_world``: the branch
must change exactly the rows it should, and nothing else.
"""

from __future__ import annotations

import awa
from awa.config import MaintenanceConfig
from awa.maintenance import BranchContext
from awa.maintenance.branches.cleanup import Cleanup
from support.branch_world import CONFIG, World, pairs, place


async def test_cleanup_deletes_only_expired_shorter_retention_history(world: World) -> None:
    ids = world.ids
    raw = world.raw
    # More history: a recent completed job and a recent cancelled one.
    ids["done_completed_new"] = await place(world, 0, "10 min", "completed")
    ids["done_cancelled_new"] = await place(world, 0, "1 hour", "cancelled")
    ages = {
        "done_completed": "2 days",  # past completed retention: left to the ring (TRUNCATE)
        "done_completed_new": "10 min",  # kept
        "done_cancelled": "3 hours",  # past cancelled retention (2 h < completed): deleted
        "done_cancelled_new": "1 hour",  # kept
        "done_failed": "2 hours",  # past failed retention (1 h < completed): deleted
    }
    for name, age in ages.items():
        await raw.execute(
            f"UPDATE awa.jobs_done SET finalized_at = now() - interval '{age}' WHERE id = $1",
            ids[name],
        )
    await raw.execute(
        "INSERT INTO awa.runtimes (instance_id, hostname, pid, role, started_at, last_seen_at,"
        " stopped_at) VALUES"
        " ('stopped-long-ago', 'h', 1, 'worker', now() - interval '1 day',"
        "  now() - interval '2 hours', now() - interval '2 hours'),"
        " ('stopped-recently', 'h', 2, 'worker', now() - interval '1 day',"
        "  now() - interval '10 min', now() - interval '10 min'),"
        " ('unseen-for-days', 'h', 3, 'worker', now() - interval '3 days',"
        "  now() - interval '2 days', NULL),"
        " ('alive', 'h', 4, 'worker', now() - interval '3 days', now(), NULL)"
    )
    await raw.execute("INSERT INTO awa.job_unique VALUES ('orphan-key', 987654321)")
    kept = await world.store.jobs.insert_job(awa.InsertParams("work", unique_key="kept-key"))

    config = MaintenanceConfig(
        startup_jitter=0,
        retention={"completed": 86400.0, "cancelled": 7200.0, "failed": 3600.0},
    )
    result, _, _, changed = await world.run(Cleanup(), config)
    assert changed == {"done_failed", "done_cancelled"}
    assert result.rows == {
        "callbacks_pruned": 0,
        "history_deleted": 2,
        "runtimes_forgotten": 2,
        "unique_keys_released": 1,
    }
    assert result.more is False
    runtimes = {r["instance_id"] for r in await raw.fetch("SELECT * FROM awa.runtimes")}
    assert runtimes == {"stopped-recently", "alive"}
    keys = pairs(await raw.fetch("SELECT unique_key, job_id FROM awa.job_unique"))
    assert keys == {"kept-key": kept.id}


async def test_cleanup_pages_history_deletion(world: World) -> None:
    await world.raw.execute(
        "UPDATE awa.jobs_done SET finalized_at = now() - interval '2 days', state = 'failed'"
    )
    config = MaintenanceConfig(startup_jitter=0, retention={**CONFIG.retention, "failed": 60})
    first = await Cleanup(batch=2).run_once(world.ctx(config))
    assert first.rows["history_deleted"] == 2
    assert first.more is True
    second = await Cleanup(batch=2).run_once(world.ctx(config))
    assert second.rows["history_deleted"] == 1
    assert second.more is False


async def test_cleanup_runs_hooks_after_each_pass(world: World) -> None:
    seen: list[BranchContext] = []

    async def hook(ctx: BranchContext) -> None:
        seen.append(ctx)

    await Cleanup(hooks=[hook]).run_once(world.ctx())
    assert len(seen) == 1


async def test_cleanup_sweeps_unique_keys_a_page_per_run(world: World) -> None:
    """Each run reads one page of keys (``batch``) after where the last one stopped, so a
    big ``awa.job_unique`` costs a page per run, and every orphan is reached in turn."""
    raw = world.raw
    await raw.execute("DELETE FROM awa.job_unique")
    orphans = [f"orphan-{n}" for n in range(5)]
    await raw.executemany(
        "INSERT INTO awa.job_unique VALUES ($1, $2)",
        [(key, 900_000_000 + n) for n, key in enumerate(orphans)],
    )
    kept = [
        await world.store.jobs.insert_job(awa.InsertParams("work", unique_key=f"kept-{n}"))
        for n in range(2)
    ]
    cleanup = Cleanup(batch=2)
    config = MaintenanceConfig(startup_jitter=0)
    released = []
    cursors = []
    for _ in range(4):
        result = await cleanup.run_once(world.ctx(config))
        released.append(result.rows["unique_keys_released"])
        cursors.append(cleanup.unique_after)
    # Keys in order: kept-0, kept-1 | orphan-0, orphan-1 | orphan-2, orphan-3 | orphan-4
    assert released == [0, 2, 2, 1]
    assert cursors == ["kept-1", "orphan-1", "orphan-3", ""]  # a short page: start over
    keys = pairs(await raw.fetch("SELECT unique_key, job_id FROM awa.job_unique"))
    assert keys == {f"kept-{n}": job.id for n, job in enumerate(kept)}
