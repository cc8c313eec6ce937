"""``rescue_stale_heartbeats``: stale and orphaned attempts only, following the presence lock
(and only a lock held in this database).

Driven directly (no leader) in the seeded world of ``support.branch_world``: the branch
must change exactly the rows it should, and nothing else.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import asyncpg

from awa.maintenance.branches.rescue_stale_heartbeats import RescueStaleHeartbeats
from awa.store.presence import Presence
from support.branch_world import DEAD, LIVE, World, decode, rescued_records


async def test_rescue_stale_heartbeats_rescues_stale_and_orphaned_only(world: World) -> None:
    result, before, _, changed = await world.run(RescueStaleHeartbeats())
    assert changed == {
        "running_stale",
        "running_stale_last",
        "running_orphan",
        "running_orphan_last",
    }
    assert result.rows == {
        "orphaned_retried": 1,
        "stale_retried": 1,
        "failed": 2,
        "cancelled": 0,
    }

    for name, holder in (("running_stale", LIVE), ("running_orphan", DEAD)):
        row = await world.live(name)
        assert row["state"] == "available"
        assert row["attempt"] == 1  # the lost attempt still counts
        assert row["run_lease"] == 7
        assert row["claimed_by"] is None
        assert row["heartbeat_at"] is None and row["deadline_at"] is None
        (record,) = rescued_records(decode(row["errors"]))
        assert record["claimed_by"] == holder
        assert record["attempt"] == 1
    orphan = rescued_records(decode((await world.live("running_orphan"))["errors"]))[0]
    assert "presence" in orphan["message"]
    stale = rescued_records(decode((await world.live("running_stale"))["errors"]))[0]
    assert "heartbeat" in stale["message"]

    # Attempts exhausted: failed, in history, with the rescue recorded.
    for name in ("running_stale_last", "running_orphan_last"):
        row = await world.done(name)
        assert row["state"] == "failed"
        assert row["finalized_at"] is not None
        assert len(rescued_records(decode(row["errors"]))) == 1
        assert before[world.ids[name]][0] == "live"

    # Untouched: fresh runners (even the deadline-expired ones, which another branch owns),
    # an orphan inside crash_grace, and parked jobs.
    for name in ("running_fresh", "running_orphan_young", "running_deadline"):
        assert (await world.live(name))["state"] == "running"


async def test_orphan_rescue_follows_the_presence_lock(world: World) -> None:
    """A running job is rescued as orphaned exactly when its runtime's lock is gone."""
    await world.raw.execute(
        "UPDATE awa.jobs SET claimed_by = $2 WHERE id = $1",
        world.ids["running_orphan"],
        "runtime-back",
    )
    back = await Presence.acquire(world.url, "runtime-back")
    try:
        result, _, _, changed = await world.run(RescueStaleHeartbeats())
        assert "running_orphan" not in changed
        assert result.rows["orphaned_retried"] == 0
    finally:
        await back.close()
    result, _, _, changed = await world.run(RescueStaleHeartbeats())
    assert changed == {"running_orphan"}
    assert result.rows["orphaned_retried"] == 1


async def test_presence_lock_on_another_database_does_not_protect_jobs(
    world: World, server_url: str, template_name: str
) -> None:
    """The orphan check is scoped to this database: the same instance id holding a lock in a
    different database does not count as present."""
    name = f"awa_m_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
        other = urlsplit(server_url)._replace(path=f"/{name}").geturl()
        elsewhere = await Presence.acquire(other, DEAD)
        try:
            _, _, _, changed = await world.run(RescueStaleHeartbeats())
        finally:
            await elsewhere.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    assert {"running_orphan", "running_orphan_last"} <= changed
