"""``cron_sync``: publishes the declared schedules and orphans the undeclared ones after a
grace (a rolling deploy), keeping them; declared again, a schedule restarts at now.

Driven directly (no leader) with time pinned by ``FakeClock``.
"""

from __future__ import annotations

import asyncpg

import awa
from awa.maintenance.branches.cron_sync import CronSync
from awa.store import Store
from support.branch_world import one
from support.cron_world import T0, every_10s, sync
from support.store_world import ctx_for


async def test_sync_publishes_and_orphans_without_deleting(
    mstore: Store, raw: asyncpg.Connection
) -> None:
    clock = awa.FakeClock(T0)
    table = every_10s("a")
    table.add("b", "0 3 * * *", "nightly", timezone="Europe/Berlin", misfire="coalesce")
    await sync(mstore, clock, table)
    rows = {r["name"]: r for r in await raw.fetch("SELECT * FROM awa.cron_schedules")}
    assert set(rows) == {"a", "b"}
    assert rows["b"]["misfire"] == "catchup_latest"  # alias resolved before storage
    assert rows["b"]["timezone"] == "Europe/Berlin"
    assert rows["a"]["evaluated_through"] == T0  # no fire before the schedule existed

    only_a = every_10s("a")
    branch = CronSync(only_a, "test", orphan_after=60.0)
    result = await branch.run_once(ctx_for(mstore, clock))
    assert result.rows["orphaned"] == 0  # b was declared less than 60 s ago (rolling deploy)
    clock.advance(61)
    result = await branch.run_once(ctx_for(mstore, clock))
    assert result.rows["orphaned"] == 1
    b = await raw.fetchrow("SELECT * FROM awa.cron_schedules WHERE name = 'b'")
    assert b is not None and b["orphaned_at"] is not None  # kept, not deleted

    clock.advance(3600)
    await sync(mstore, clock, table)  # declared again: back, restarting at now
    b = await one(raw, "SELECT * FROM awa.cron_schedules WHERE name = 'b'")
    assert b["orphaned_at"] is None
    assert b["evaluated_through"] == clock.now()
