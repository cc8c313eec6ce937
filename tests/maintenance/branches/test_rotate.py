"""``rotate``: truncates expired non-current slots, waits for live history, wraps around.

Driven directly (no leader) in the seeded world of ``support.branch_world``: the branch
must change exactly the rows it should, and nothing else.
"""

from __future__ import annotations

from awa.config import MaintenanceConfig
from awa.maintenance.branches.rotate import Rotate
from support.branch_world import SEEDS, World, one, place

SHORT = MaintenanceConfig(
    startup_jitter=0, retention={"completed": 60.0, "failed": 60.0, "cancelled": 60.0}
)


async def slot_counts(world: World) -> dict[int, int]:
    rows = await world.raw.fetch("SELECT slot, count(*) AS n FROM awa.jobs_done GROUP BY slot")
    return {int(r["slot"]): int(r["n"]) for r in rows}


async def test_rotate_truncates_expired_non_current_slots_and_advances(world: World) -> None:
    raw = world.raw
    await raw.execute("UPDATE awa.jobs_done SET finalized_at = now() - interval '2 hours'")
    assert await slot_counts(world) == {0: 3}  # the seeded history is in the current slot
    await place(world, 3, "2 hours")
    await place(world, 3, "3 hours", "failed")
    await place(world, 5, "2 hours")
    fresh = await place(world, 5, "1 s")
    await raw.execute("UPDATE awa.ring_state SET rotated_at = now() - interval '1 hour'")

    result, _, _, changed = await world.run(Rotate(), SHORT)
    # Slot 3 (all expired) is truncated; slot 5 (one fresh row) and the current slot 0 stay.
    assert result.rows == {"slots_pruned": 1, "slots_deferred": 0, "rotated": 1, "rows_carried": 0}
    assert await slot_counts(world) == {0: 3, 5: 2}
    assert not any(name in SEEDS for name in changed)
    ring = await one(raw, "SELECT * FROM awa.ring_state")
    assert ring["current_slot"] == 1
    assert ring["rotated_at"] > await raw.fetchval("SELECT now() - interval '1 min'")

    # Next run: no rotation (the new slot is young); the former current slot 0 is now
    # prunable; slot 5 still holds a fresh row.
    result, _, _, _ = await world.run(Rotate(), SHORT)
    assert result.rows == {"slots_pruned": 1, "slots_deferred": 0, "rotated": 0, "rows_carried": 0}
    assert await slot_counts(world) == {5: 2}
    assert (await one(raw, "SELECT * FROM awa.ring_state"))["current_slot"] == 1
    assert await raw.fetchval("SELECT slot FROM awa.jobs_done WHERE id = $1", fresh) == 5


async def test_rotate_waits_when_the_next_slot_still_holds_live_history(world: World) -> None:
    raw = world.raw
    await raw.execute("UPDATE awa.ring_state SET current_slot = 4")
    await raw.execute("UPDATE awa.jobs_done SET slot = 4")
    await place(world, 5, "1 s")
    await raw.execute("UPDATE awa.ring_state SET rotated_at = now() - interval '1 hour'")
    result, _, _, changed = await world.run(Rotate(), SHORT)
    assert result.rows == {"slots_pruned": 0, "slots_deferred": 0, "rotated": 0, "rows_carried": 0}
    assert changed == set()
    assert (await one(raw, "SELECT * FROM awa.ring_state"))["current_slot"] == 4


async def test_rotate_wraps_around_the_ring(world: World) -> None:
    raw = world.raw
    await raw.execute("UPDATE awa.jobs_done SET slot = 7")
    await raw.execute(
        "UPDATE awa.ring_state SET current_slot = 7, rotated_at = now() - interval '1 hour'"
    )
    result, _, _, _ = await world.run(Rotate(), SHORT)
    assert result.rows["rotated"] == 1
    assert (await one(raw, "SELECT * FROM awa.ring_state"))["current_slot"] == 0


async def test_rotate_carries_longer_kept_rows_and_truncates_the_bulk(world: World) -> None:
    """A slot whose completed rows are past their retention, with a failed row that is
    not (kept longer), is reclaimed by TRUNCATE after the failed row is copied, with its
    id and finalized_at, into the current slot; a failed row past its own retention is
    not copied."""
    raw = world.raw
    keep = MaintenanceConfig(
        startup_jitter=0, retention={"completed": 60.0, "failed": 86400.0, "cancelled": 60.0}
    )
    await raw.execute("UPDATE awa.jobs_done SET finalized_at = now() - interval '2 hours'")
    await raw.execute("UPDATE awa.jobs_done SET slot = 4")
    bulk = [await place(world, 3, "2 hours") for _ in range(5)]
    failed = await place(world, 3, "2 hours", "failed")
    stale = await place(world, 3, "2 days", "failed")
    fresh = await place(world, 5, "1 s")
    before = await one(raw, "SELECT * FROM awa.jobs_done WHERE id = $1", failed)

    result, _, _, _ = await world.run(Rotate(), keep)
    # Slots 3 and 4 carried (4 holds the seeded failed job, kept a day); slot 5 is fresh.
    assert result.rows["rows_carried"] >= 1 and result.rows["slots_pruned"] == 2
    assert await raw.fetchval("SELECT count(*) FROM awa.jobs_done WHERE id = ANY($1)", bulk) == 0
    assert await raw.fetchval("SELECT count(*) FROM awa.jobs_done WHERE id = $1", stale) == 0
    after = await one(raw, "SELECT * FROM awa.jobs_done WHERE id = $1", failed)
    assert after["slot"] == 0
    assert dict(after) == {**dict(before), "slot": 0}
    assert (await slot_counts(world)).keys() == {0, 5}
    assert await raw.fetchval("SELECT slot FROM awa.jobs_done WHERE id = $1", fresh) == 5


async def test_rotation_period_follows_the_completed_retention(world: World) -> None:
    """The ring turns every completed retention / (slots - 2), not the longest retention's:
    with 1 day completed and 7 days failed, a slot current for 5 hours (> 24 h / 6) rotates."""
    raw = world.raw
    await raw.execute("UPDATE awa.ring_state SET rotated_at = now() - interval '5 hours'")
    result, _, _, _ = await world.run(Rotate(), MaintenanceConfig(startup_jitter=0))
    assert result.rows["rotated"] == 1
