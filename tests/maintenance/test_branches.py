"""Each built-in maintenance branch, driven directly (no leader) against rows seeded in every
state on a real PostgreSQL: it must change exactly the rows it should, and nothing else.

A fixed set of live jobs is seeded by inserting jobs and then moving them with SQL; the
whole of ``awa.jobs`` and ``awa.jobs_done`` is snapshotted before and after one
``run_once`` and the difference is compared with the branch's contract. Also here: a rescue
racing a completion never overwrites it, in either order.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

import awa
from awa.config import MaintenanceConfig
from awa.maintenance import Branch, BranchContext
from awa.maintenance.branches.cleanup import Cleanup
from awa.maintenance.branches.priority_aging import PriorityAging
from awa.maintenance.branches.promote_scheduled import PromoteScheduled
from awa.maintenance.branches.queue_stats import QueueStats
from awa.maintenance.branches.refresh_admin_metadata import RefreshAdminMetadata
from awa.maintenance.branches.rescue_expired_callbacks import RescueExpiredCallbacks
from awa.maintenance.branches.rescue_expired_deadlines import RescueExpiredDeadlines
from awa.maintenance.branches.rescue_stale_heartbeats import RescueStaleHeartbeats
from awa.maintenance.branches.rotate import Rotate
from awa.store import FinishedAttempt
from awa.store.maintenance import MaintenanceStore, Presence

LIVE = "runtime-live"  # holds its presence lock for the whole test
DEAD = "runtime-dead"  # holds none: crashed

_RUNNING = (
    "state = 'running', attempt = 1, run_lease = 7, claimed_by = '{who}', "
    "attempted_at = now() - interval '{age}', heartbeat_at = now() - interval '{beat}', "
    "deadline_at = {deadline}"
)


def running(who: str, age: str, beat: str = "0 s", deadline: str = "NULL") -> str:
    return _RUNNING.format(who=who, age=age, beat=beat, deadline=deadline)


def waiting(timeout: str) -> str:
    return (
        "state = 'waiting_external', attempt = 1, run_lease = 3, claimed_by = '"
        + LIVE
        + "', attempted_at = now() - interval '1 min', heartbeat_at = NULL, "
        "callback_id = gen_random_uuid(), callback_timeout_at = " + timeout
    )


#: name -> (max_attempts, SQL SET clause moving the freshly inserted job into its state).
SEEDS: dict[str, tuple[int, str]] = {
    "available": (25, "state = 'available', run_at = now()"),
    "available_old": (
        25,
        "state = 'available', priority = 3, original_priority = 3, "
        "run_at = now() - interval '1 hour'",
    ),
    "available_top": (
        25,
        "state = 'available', priority = 1, original_priority = 1, "
        "run_at = now() - interval '1 hour'",
    ),
    "scheduled_due": (25, "state = 'scheduled', run_at = now() - interval '10 s'"),
    "scheduled_future": (25, "state = 'scheduled', run_at = now() + interval '1 hour'"),
    "retryable_due": (25, "state = 'retryable', attempt = 1, run_at = now() - interval '10 s'"),
    "retryable_future": (
        25,
        "state = 'retryable', attempt = 1, run_at = now() + interval '2 hours'",
    ),
    "running_fresh": (25, running(LIVE, "10 s", deadline="now() + interval '1 hour'")),
    "running_stale": (25, running(LIVE, "1 hour", beat="1 hour")),
    "running_stale_last": (1, running(LIVE, "1 hour", beat="1 hour")),
    "running_orphan": (25, running(DEAD, "2 min", deadline="now() + interval '1 hour'")),
    "running_orphan_last": (1, running(DEAD, "2 min")),
    "running_orphan_young": (25, running(DEAD, "1 s")),
    "running_deadline": (25, running(LIVE, "1 hour", deadline="now() - interval '1 min'")),
    "running_deadline_last": (1, running(LIVE, "1 hour", deadline="now() - interval '1 min'")),
    "running_deadline_grace": (25, running(LIVE, "1 hour", deadline="now() - interval '1 s'")),
    "waiting_expired": (25, waiting("now() - interval '10 s'")),
    "waiting_expired_last": (1, waiting("now() - interval '10 s'")),
    "waiting_pending": (25, waiting("now() + interval '1 hour'")),
}

#: Finished jobs seeded in history: name -> final state.
FINISHED = {
    "done_completed": awa.JobState.COMPLETED,
    "done_failed": awa.JobState.FAILED,
    "done_cancelled": awa.JobState.CANCELLED,
}

#: crash_grace is large so that "2 min" orphans are rescued and "1 s" ones are not, however
#: slowly the test runs.
CONFIG = MaintenanceConfig(startup_jitter=0, crash_grace=30.0, heartbeat_staleness=30.0)

Snapshot = dict[int, tuple[str, dict[str, Any]]]


@dataclass
class World:
    url: str
    raw: asyncpg.Connection
    store: MaintenanceStore
    ids: dict[str, int]

    def ctx(self, config: MaintenanceConfig = CONFIG) -> BranchContext:
        return BranchContext(store=self.store, clock=awa.SystemClock(), config=config)

    async def snapshot(self) -> Snapshot:
        live = await self.raw.fetch("SELECT * FROM awa.jobs")
        done = await self.raw.fetch("SELECT * FROM awa.jobs_done")
        out: Snapshot = {r["id"]: ("live", dict(r)) for r in live}
        out.update({r["id"]: ("done", dict(r)) for r in done})
        return out

    def names(self, ids: set[int]) -> set[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return {by_id.get(i, str(i)) for i in ids}

    async def run(
        self, branch: Branch, config: MaintenanceConfig = CONFIG
    ) -> tuple[Any, Snapshot, Snapshot, set[str]]:
        before = await self.snapshot()
        result = await branch.run_once(self.ctx(config))
        after = await self.snapshot()
        changed = {i for i in before.keys() | after.keys() if before.get(i) != after.get(i)}
        return result, before, after, self.names(changed)

    async def live(self, name: str) -> asyncpg.Record:
        row = await self.raw.fetchrow("SELECT * FROM awa.jobs WHERE id = $1", self.ids[name])
        assert row is not None, f"{name} is not live"
        return row

    async def done(self, name: str) -> asyncpg.Record:
        row = await self.raw.fetchrow("SELECT * FROM awa.jobs_done WHERE id = $1", self.ids[name])
        assert row is not None, f"{name} is not in history"
        return row


@pytest.fixture
async def world(database_url: str, raw: asyncpg.Connection) -> AsyncIterator[World]:
    store = await MaintenanceStore.open(database_url, max_size=4)
    presence = await Presence.acquire(database_url, LIVE)
    try:
        ids: dict[str, int] = {}
        # History first: claim and finish jobs of their own kind.
        for name in FINISHED:
            job = await store.insert(awa.InsertParams("done", {"name": name}))
            ids[name] = job.id
        claimed = {j.id: j for j in await store.claim("default", ["done"], 10, LIVE)}
        assert set(claimed) == {ids[n] for n in FINISHED}
        completed = ids["done_completed"]
        assert await store.complete([completed], [claimed[completed].run_lease], [{"ok": 1}])
        finals = [
            FinishedAttempt(ids[n], claimed[ids[n]].run_lease, state, {"kind": "test"})
            for n, state in FINISHED.items()
            if state is not awa.JobState.COMPLETED
        ]
        assert len(await store.finalize(finals)) == 2
        # Live jobs in every state.
        for name, (max_attempts, assignment) in SEEDS.items():
            job = await store.insert(
                awa.InsertParams("work", {"name": name}, max_attempts=max_attempts)
            )
            ids[name] = job.id
            await raw.execute(f"UPDATE awa.jobs SET {assignment} WHERE id = $1", job.id)
        states = dict(await raw.fetch("SELECT id, state::text FROM awa.jobs"))
        assert len(states) == len(SEEDS)
        yield World(database_url, raw, store, ids)
    finally:
        await presence.close()
        await store.close()


def rescued_records(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in errors if e.get("kind") == "rescued"]


def decode(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


# -------------------------------------------------------------------------- promote_scheduled


async def test_promote_scheduled_promotes_only_due_deferred_jobs(world: World) -> None:
    result, before, after, changed = await world.run(PromoteScheduled())
    assert changed == {"scheduled_due", "retryable_due"}
    assert result.rows == {"promoted": 2}
    assert result.more is False
    for name in changed:
        old, new = before[world.ids[name]][1], after[world.ids[name]][1]
        assert new["state"] == "available"
        assert {k for k in old if old[k] != new[k]} == {"state"}
    # The next deferred job is the scheduled one, due in about an hour.
    assert result.next_due_in is not None
    assert 3000 < result.next_due_in <= 3600

    again, _, _, changed = await world.run(PromoteScheduled())
    assert changed == set()
    assert again.rows == {"promoted": 0}


async def test_promote_scheduled_pages_in_bounded_batches(world: World) -> None:
    await world.raw.execute(
        "UPDATE awa.jobs SET state = 'scheduled', run_at = now() - interval '1 min'"
        " WHERE id = ANY ($1::bigint[])",
        [world.ids[n] for n in ("available", "available_old", "available_top")],
    )
    first = await PromoteScheduled(batch=2).run_once(world.ctx())
    assert first.rows == {"promoted": 2}
    assert first.more is True
    second = await PromoteScheduled(batch=2).run_once(world.ctx())
    third = await PromoteScheduled(batch=2).run_once(world.ctx())
    assert first.total + second.total + third.total == 5
    assert third.more is False


# -------------------------------------------------------------------- rescue_stale_heartbeats


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


# ------------------------------------------------------------------ rescue_expired_deadlines


async def test_rescue_expired_deadlines_rescues_only_past_grace(world: World) -> None:
    result, _, _, changed = await world.run(RescueExpiredDeadlines())
    assert changed == {"running_deadline", "running_deadline_last"}
    assert result.rows == {"retried": 1, "failed": 1, "cancelled": 0}
    row = await world.live("running_deadline")
    assert row["state"] == "retryable"
    assert row["claimed_by"] is None and row["deadline_at"] is None
    assert row["run_at"] > await world.raw.fetchval("SELECT now()")
    (record,) = rescued_records(decode(row["errors"]))
    assert "deadline" in record["message"]
    failed = await world.done("running_deadline_last")
    assert failed["state"] == "failed"
    assert (await world.live("running_deadline_grace"))["state"] == "running"


# ------------------------------------------------------------------ rescue_expired_callbacks


async def test_rescue_expired_callbacks_rescues_only_timed_out_parked_jobs(
    world: World,
) -> None:
    result, _, _, changed = await world.run(RescueExpiredCallbacks())
    assert changed == {"waiting_expired", "waiting_expired_last"}
    assert result.rows == {"retried": 1, "failed": 1}
    row = await world.live("waiting_expired")
    assert row["state"] == "retryable"
    assert row["callback_id"] is None and row["callback_timeout_at"] is None
    assert row["claimed_by"] is None
    (record,) = rescued_records(decode(row["errors"]))
    assert "callback" in record["message"]
    assert (await world.done("waiting_expired_last"))["state"] == "failed"
    pending = await world.live("waiting_pending")
    assert pending["state"] == "waiting_external"
    assert pending["callback_id"] is not None


# ---------------------------------------------------------------------------- priority_aging


async def test_priority_aging_ages_only_long_waiting_available_jobs(world: World) -> None:
    result, before, after, changed = await world.run(PriorityAging())
    assert changed == {"available_old"}
    assert result.rows == {"aged": 1}
    old, new = before[world.ids["available_old"]][1], after[world.ids["available_old"]][1]
    assert (old["priority"], new["priority"]) == (3, 2)
    assert new["original_priority"] == 3
    assert {k for k in old if old[k] != new[k]} == {"priority"}
    # One level per run: waited an hour, step 300 s per level gained, so 2 -> 1 next.
    result, _, _, changed = await world.run(PriorityAging())
    assert changed == {"available_old"}
    assert (await world.live("available_old"))["priority"] == 1
    result, _, _, changed = await world.run(PriorityAging())
    assert changed == set()
    assert result.rows == {"aged": 0}


# ------------------------------------------------------------------------------ queue_stats


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


# ---------------------------------------------------------------------------------- cleanup


async def place(world: World, slot: int, age: str, state: str = "completed") -> int:
    """Copy a history row into ``slot`` with a new id, finalized ``age`` ago."""
    return int(
        await world.raw.fetchval(
            "INSERT INTO awa.jobs_done (slot, id, kind, queue, args, state, priority,"
            " original_priority, attempt, max_attempts, run_at, created_at, attempted_at,"
            " finalized_at, timeout_s, tags, metadata, errors, run_lease)"
            " SELECT $1, nextval('awa.job_id_seq'), kind, queue, args, $3::awa.job_state,"
            " priority, original_priority, attempt, max_attempts, run_at, created_at,"
            " attempted_at, now() - $2::text::interval, timeout_s, tags, metadata, errors,"
            " run_lease"
            " FROM awa.jobs_done WHERE id = $4 RETURNING id",
            slot,
            age,
            state,
            world.ids["done_completed"],
        )
    )


async def test_cleanup_deletes_only_expired_shorter_retention_history(world: World) -> None:
    ids = world.ids
    raw = world.raw
    # More history: a recent completed job and a recent cancelled one.
    ids["done_completed_new"] = await place(world, 0, "10 min", "completed")
    ids["done_cancelled_new"] = await place(world, 0, "1 hour", "cancelled")
    ages = {
        "done_completed": "2 hours",  # past completed retention (1 h): deleted
        "done_completed_new": "10 min",  # kept
        "done_cancelled": "3 hours",  # past cancelled retention (2 h): deleted
        "done_cancelled_new": "1 hour",  # kept
        "done_failed": "2 days",  # failed has the longest retention: left to rotation
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
    kept = await world.store.insert(awa.InsertParams("work", unique_key="kept-key"))

    config = MaintenanceConfig(
        startup_jitter=0,
        retention={"completed": 3600.0, "cancelled": 7200.0, "failed": 86400.0},
    )
    result, _, _, changed = await world.run(Cleanup(), config)
    assert changed == {"done_completed", "done_cancelled"}
    assert result.rows == {
        "callbacks_pruned": 0,
        "history_deleted": 2,
        "runtimes_forgotten": 2,
        "unique_keys_released": 1,
    }
    assert result.more is False
    runtimes = {r["instance_id"] for r in await raw.fetch("SELECT * FROM awa.runtimes")}
    assert runtimes == {"stopped-recently", "alive"}
    keys = dict(await raw.fetch("SELECT unique_key, job_id FROM awa.job_unique"))
    assert keys == {"kept-key": kept.id}


async def test_cleanup_pages_history_deletion(world: World) -> None:
    await world.raw.execute(
        "UPDATE awa.jobs_done SET finalized_at = now() - interval '2 days', state = 'completed'"
    )
    config = MaintenanceConfig(startup_jitter=0, retention={**CONFIG.retention, "completed": 60})
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


# ----------------------------------------------------------------------------------- rotate

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
    assert result.rows == {"slots_pruned": 1, "slots_deferred": 0, "rotated": 1}
    assert await slot_counts(world) == {0: 3, 5: 2}
    assert not any(name in SEEDS for name in changed)
    ring = await raw.fetchrow("SELECT * FROM awa.ring_state")
    assert ring["current_slot"] == 1
    assert ring["rotated_at"] > await raw.fetchval("SELECT now() - interval '1 min'")

    # Next run: no rotation (the new slot is young); the former current slot 0 is now
    # prunable; slot 5 still holds a fresh row.
    result, _, _, _ = await world.run(Rotate(), SHORT)
    assert result.rows == {"slots_pruned": 1, "slots_deferred": 0, "rotated": 0}
    assert await slot_counts(world) == {5: 2}
    assert (await raw.fetchrow("SELECT * FROM awa.ring_state"))["current_slot"] == 1
    assert await raw.fetchval("SELECT slot FROM awa.jobs_done WHERE id = $1", fresh) == 5


async def test_rotate_waits_when_the_next_slot_still_holds_live_history(world: World) -> None:
    raw = world.raw
    await raw.execute("UPDATE awa.ring_state SET current_slot = 4")
    await raw.execute("UPDATE awa.jobs_done SET slot = 4")
    await place(world, 5, "1 s")
    await raw.execute("UPDATE awa.ring_state SET rotated_at = now() - interval '1 hour'")
    result, _, _, changed = await world.run(Rotate(), SHORT)
    assert result.rows == {"slots_pruned": 0, "slots_deferred": 0, "rotated": 0}
    assert changed == set()
    assert (await raw.fetchrow("SELECT * FROM awa.ring_state"))["current_slot"] == 4


async def test_rotate_wraps_around_the_ring(world: World) -> None:
    raw = world.raw
    await raw.execute("UPDATE awa.jobs_done SET slot = 7")
    await raw.execute(
        "UPDATE awa.ring_state SET current_slot = 7, rotated_at = now() - interval '1 hour'"
    )
    result, _, _, _ = await world.run(Rotate(), SHORT)
    assert result.rows["rotated"] == 1
    assert (await raw.fetchrow("SELECT * FROM awa.ring_state"))["current_slot"] == 0


# -------------------------------------------------------------------- refresh_admin_metadata


async def test_refresh_admin_metadata_upserts_live_and_handled_pairs(world: World) -> None:
    store = world.store
    await store.register_runtime(LIVE, "h", 1, "worker", {"default": 4, "emails": 2}, ["work"])
    await store.register_runtime("gone", "h", 2, "worker", {"old": 1}, ["legacy"])
    await store.stop_runtime("gone")
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
    await world.store.insert(awa.InsertParams("orphan_kind", queue="lost"))
    await RefreshAdminMetadata().run_once(world.ctx())
    row = await world.raw.fetchrow("SELECT * FROM awa.admin_metadata WHERE queue = 'lost'")
    assert (row["handled_by"], row["live_jobs"]) == (0, 1)
    await world.raw.execute("DELETE FROM awa.jobs WHERE queue = 'lost'")
    await RefreshAdminMetadata().run_once(world.ctx())
    row = await world.raw.fetchrow("SELECT * FROM awa.admin_metadata WHERE queue = 'lost'")
    assert row["live_jobs"] == 0


async def test_refresh_admin_metadata_zeroes_pairs_no_runtime_handles_any_more(
    world: World,
) -> None:
    store = world.store
    await store.register_runtime("old", "h", 2, "worker", {"reports": 1}, ["monthly"])
    first = await RefreshAdminMetadata().run_once(world.ctx())
    assert first.rows == {"pairs": 2}  # (default, work) from the seeds and (reports, monthly)
    seen = await world.raw.fetchrow(
        "SELECT * FROM awa.admin_metadata WHERE queue = 'reports' AND kind = 'monthly'"
    )
    assert seen is not None
    assert (seen["handled_by"], seen["live_jobs"]) == (1, 0)
    await store.stop_runtime("old")
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


# ------------------------------------------------------------ rescue racing a completion


async def test_completion_before_rescue_is_never_overwritten(
    database_url: str, raw: asyncpg.Connection
) -> None:
    store = await MaintenanceStore.open(database_url, max_size=2)
    try:
        job = await store.insert(awa.InsertParams("race", {"n": 1}))
        (claimed,) = await store.claim("default", ["race"], 1, DEAD)
        seen = [(claimed.id, claimed.run_lease)]
        # The rescue branch saw the attempt (old id/lease pair) ... then the worker completes.
        assert await store.complete([claimed.id], [claimed.run_lease], [{"done": True}]) == {job.id}
        outcome = await store.rescue(
            seen, from_states=["running"], reason="test", retry_base_delay=0.0
        )
        assert (outcome.retried, outcome.failed) == (0, 0)
        assert await raw.fetchval("SELECT count(*) FROM awa.jobs") == 0
        row = await raw.fetchrow("SELECT * FROM awa.jobs_done WHERE id = $1", job.id)
        assert row["state"] == "completed"
        assert decode(row["result"]) == {"done": True}
        assert rescued_records(decode(row["errors"])) == []
    finally:
        await store.close()


async def test_completion_after_rescue_is_rejected_as_stale(
    database_url: str, raw: asyncpg.Connection
) -> None:
    store = await MaintenanceStore.open(database_url, max_size=2)
    try:
        job = await store.insert(awa.InsertParams("race", {"n": 1}))
        (claimed,) = await store.claim("default", ["race"], 1, DEAD)
        outcome = await store.rescue(
            [(claimed.id, claimed.run_lease)],
            from_states=["running"],
            reason="test",
            retry_base_delay=0.0,
        )
        assert (outcome.retried, outcome.failed) == (1, 0)
        assert await store.complete([claimed.id], [claimed.run_lease], [{"late": True}]) == set()
        row = await raw.fetchrow("SELECT * FROM awa.jobs WHERE id = $1", job.id)
        assert row["state"] == "available"
        assert await raw.fetchval("SELECT count(*) FROM awa.jobs_done") == 0
        # Re-claimed by someone else: the old holder's completion is still stale.
        (again,) = await store.claim("default", ["race"], 1, LIVE)
        assert again.run_lease > claimed.run_lease
        assert await store.complete([claimed.id], [claimed.run_lease], [None]) == set()
        assert await store.complete([again.id], [again.run_lease], [{"ok": 1}]) == {job.id}
        done = await raw.fetchrow("SELECT * FROM awa.jobs_done WHERE id = $1", job.id)
        assert done["state"] == "completed"
        assert done["attempt"] == 2
        assert len(rescued_records(decode(done["errors"]))) == 1
    finally:
        await store.close()


async def test_rescue_branch_racing_completion_keeps_the_completion(
    database_url: str, raw: asyncpg.Connection
) -> None:
    """The branch's find and its guarded update are separate statements: a completion that
    lands between them wins."""
    store = await MaintenanceStore.open(database_url, max_size=2)
    try:
        await store.insert(awa.InsertParams("race"))
        (claimed,) = await store.claim("default", ["race"], 1, DEAD)
        found = await store.find_orphaned_running(0.0, 10)
        assert found == [(claimed.id, claimed.run_lease)]
        assert await store.complete([claimed.id], [claimed.run_lease], [None]) == {claimed.id}
        outcome = await store.rescue(
            found, from_states=["running"], reason="orphan", retry_base_delay=0.0
        )
        assert (outcome.retried, outcome.failed) == (0, 0)
        state = await raw.fetchval("SELECT state FROM awa.jobs_done WHERE id = $1", claimed.id)
        assert state == "completed"
    finally:
        await store.close()
