"""``refresh_admin_metadata``: upserts live and handled (queue, kind) pairs, zeroes gone ones.

Driven directly (no leader) in the seeded world of ``support.branch_world``: the branch
must change exactly the rows it should, and nothing else.
"""

from __future__ import annotations

import awa
from awa.maintenance.branches.refresh_admin_metadata import RefreshAdminMetadata
from support.branch_world import LIVE, SEEDS, World, one


async def test_refresh_admin_metadata_upserts_live_and_handled_pairs(world: World) -> None:
    store = world.store
    await store.runtimes.register_runtime(
        LIVE, "h", 1, "worker", {"default": 4, "emails": 2}, ["work"]
    )
    await store.runtimes.register_runtime("gone", "h", 2, "worker", {"old": 1}, ["legacy"])
    await store.runtimes.stop_runtime("gone")
    result, _, _, changed = await world.run(RefreshAdminMetadata())
    assert changed == set()
    rows = {
        (r["queue"], r["kind"]): (r["handled_by"], r["live_jobs"])
        for r in await world.raw.fetch("SELECT * FROM awa.admin_metadata")
    }
    assert rows == {
        ("default", "work"): (1, len(SEEDS)),
        ("emails", "work"): (1, 0),
    }
    assert result.rows == {"pairs": 2}


async def test_refresh_admin_metadata_forgets_counts_of_drained_pairs(world: World) -> None:
    await world.store.jobs.insert_job(awa.InsertParams("orphan_kind", queue="lost"))
    await RefreshAdminMetadata().run_once(world.ctx())
    row = await one(world.raw, "SELECT * FROM awa.admin_metadata WHERE queue = 'lost'")
    assert (row["handled_by"], row["live_jobs"]) == (0, 1)
    await world.raw.execute("DELETE FROM awa.jobs WHERE queue = 'lost'")
    await RefreshAdminMetadata().run_once(world.ctx())
    row = await one(world.raw, "SELECT * FROM awa.admin_metadata WHERE queue = 'lost'")
    assert row["live_jobs"] == 0


async def test_refresh_admin_metadata_zeroes_pairs_no_runtime_handles_any_more(
    world: World,
) -> None:
    store = world.store
    await store.runtimes.register_runtime("old", "h", 2, "worker", {"reports": 1}, ["monthly"])
    first = await RefreshAdminMetadata().run_once(world.ctx())
    assert first.rows == {"pairs": 2}  # (default, work) from the seeds and (reports, monthly)
    seen = await one(
        world.raw, "SELECT * FROM awa.admin_metadata WHERE queue = 'reports' AND kind = 'monthly'"
    )
    assert seen is not None
    assert (seen["handled_by"], seen["live_jobs"]) == (1, 0)
    await store.runtimes.stop_runtime("old")
    second = await RefreshAdminMetadata().run_once(world.ctx())
    assert second.rows == {"pairs": 1}  # only the pair still seen is upserted
    rows = {
        (r["queue"], r["kind"]): r
        for r in await world.raw.fetch("SELECT * FROM awa.admin_metadata")
    }
    gone = rows[("reports", "monthly")]
    # kept, zeroed, and still telling when it was first and last seen
    assert (gone["handled_by"], gone["live_jobs"]) == (0, 0)
    assert (gone["first_seen"], gone["last_seen"]) == (seen["first_seen"], seen["last_seen"])
    assert rows[("default", "work")]["live_jobs"] == len(SEEDS)
    # an already-zeroed pair is not rewritten by later refreshes
    xmin = await world.raw.fetchval(
        "SELECT xmin::text FROM awa.admin_metadata WHERE queue = 'reports'"
    )
    await RefreshAdminMetadata().run_once(world.ctx())
    assert (
        await world.raw.fetchval(
            "SELECT xmin::text FROM awa.admin_metadata WHERE queue = 'reports'"
        )
        == xmin
    )
