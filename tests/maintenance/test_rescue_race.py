"""A rescue racing a completion never overwrites it, in either order: the rescue's find and
its guarded update are separate statements, and every write is guarded by the attempt's
lease.
"""

from __future__ import annotations

import asyncpg

import awa
from awa.store import Store
from awa.store.attempts import lease_generation
from support.branch_world import DEAD, LIVE, decode, one, rescued_records


async def test_completion_before_rescue_is_never_overwritten(
    database_url: str, raw: asyncpg.Connection
) -> None:
    store = await Store.open(database_url, max_size=2)
    try:
        job = await store.jobs.insert_job(awa.InsertParams("race", {"n": 1}))
        (claimed,) = await store.jobs.claim_batch("default", ["race"], 1, DEAD)
        seen = [(claimed.id, claimed.run_lease)]
        # The rescue branch saw the attempt (old id/lease pair) ... then the worker completes.
        assert await store.jobs.complete_batch(
            [claimed.id], [claimed.run_lease], [{"done": True}]
        ) == {job.id}
        outcome = await store.recovery.rescue(
            seen, from_states=["running"], reason="test", retry_base_delay=0.0
        )
        assert (outcome.retried, outcome.failed) == (0, 0)
        assert await raw.fetchval("SELECT count(*) FROM awa.jobs") == 0
        row = await one(raw, "SELECT * FROM awa.jobs_done WHERE id = $1", job.id)
        assert row["state"] == "completed"
        assert decode(row["result"]) == {"done": True}
        assert rescued_records(decode(row["errors"])) == []
    finally:
        await store.close()


async def test_completion_after_rescue_is_rejected_as_stale(
    database_url: str, raw: asyncpg.Connection
) -> None:
    store = await Store.open(database_url, max_size=2)
    try:
        job = await store.jobs.insert_job(awa.InsertParams("race", {"n": 1}))
        (claimed,) = await store.jobs.claim_batch("default", ["race"], 1, DEAD)
        outcome = await store.recovery.rescue(
            [(claimed.id, claimed.run_lease)],
            from_states=["running"],
            reason="test",
            retry_base_delay=0.0,
        )
        assert (outcome.retried, outcome.failed) == (1, 0)
        assert (
            await store.jobs.complete_batch([claimed.id], [claimed.run_lease], [{"late": True}])
            == set()
        )
        row = await one(raw, "SELECT * FROM awa.jobs WHERE id = $1", job.id)
        assert row["state"] == "available"
        assert await raw.fetchval("SELECT count(*) FROM awa.jobs_done") == 0
        # Re-claimed by someone else: the old holder's completion is still stale.
        (again,) = await store.jobs.claim_batch("default", ["race"], 1, LIVE)
        assert lease_generation(again.run_lease) == lease_generation(claimed.run_lease) + 1
        assert await store.jobs.complete_batch([claimed.id], [claimed.run_lease], [None]) == set()
        assert await store.jobs.complete_batch([again.id], [again.run_lease], [{"ok": 1}]) == {
            job.id
        }
        done = await one(raw, "SELECT * FROM awa.jobs_done WHERE id = $1", job.id)
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
    store = await Store.open(database_url, max_size=2)
    try:
        await store.jobs.insert_job(awa.InsertParams("race"))
        (claimed,) = await store.jobs.claim_batch("default", ["race"], 1, DEAD)
        found = await store.recovery.find_orphaned_running(0.0, 10)
        assert found == [(claimed.id, claimed.run_lease)]
        assert await store.jobs.complete_batch([claimed.id], [claimed.run_lease], [None]) == {
            claimed.id
        }
        outcome = await store.recovery.rescue(
            found, from_states=["running"], reason="orphan", retry_base_delay=0.0
        )
        assert (outcome.retried, outcome.failed) == (0, 0)
        state = await raw.fetchval("SELECT state FROM awa.jobs_done WHERE id = $1", claimed.id)
        assert state == "completed"
    finally:
        await store.close()
