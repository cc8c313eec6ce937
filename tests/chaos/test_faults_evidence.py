"""Rescue only the dead (ADR 014), at the store level against the real server.

A missing presence lock is not proof of death: a live runtime whose presence connection
half-opened keeps beating its liveness row through its pool. These tests pin the two-signal
rule, its re-check in the rescue's final write, and the admin metadata's view of a runtime
killed with SIGKILL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import asyncpg
import pytest

import awa
from awa.store import Store
from awa.store.presence import Presence
from awa.store.recovery import RescueRecheck
from support.chaos import wait_for

pytestmark = pytest.mark.timeout(60)

HOLDER = "holder-runtime"


@pytest.fixture
async def mstore(database_url: str) -> AsyncIterator[Store]:
    store = await Store.open(database_url, max_size=3)
    yield store
    await store.close()


async def running_job(
    store: Store, raw: asyncpg.Connection, *, beat_age: float | None
) -> tuple[int, int]:
    """One job claimed by HOLDER 10 s ago; HOLDER's liveness row last beaten ``beat_age``
    seconds ago (None: no row at all)."""
    await store.jobs.insert_job(awa.InsertParams("work", {}))
    (job,) = await store.jobs.claim_batch("default", ["work"], 1, HOLDER)
    await raw.execute(
        "UPDATE awa.jobs SET attempted_at = now() - interval '10 s',"
        " heartbeat_at = now() - interval '10 s' WHERE id = $1",
        job.id,
    )
    if beat_age is not None:
        await store.runtimes.register_runtime(HOLDER, "host", 1, "worker", {"default": 1}, ["work"])
        await raw.execute(
            "UPDATE awa.runtimes SET last_seen_at = now() - make_interval(secs => $2)"
            " WHERE instance_id = $1",
            HOLDER,
            beat_age,
        )
    return job.id, job.run_lease


@pytest.mark.parametrize(
    ("beat_age", "orphaned"),
    [(0.2, False), (5.0, True), (None, True)],
    ids=["beating", "silent", "no-row"],
)
async def test_orphaned_needs_the_lock_gone_and_the_holder_silent(
    mstore: Store, raw: asyncpg.Connection, beat_age: float | None, orphaned: bool
) -> None:
    pair = await running_job(mstore, raw, beat_age=beat_age)
    found, _stale = await mstore.recovery.find_rescuable_running(0.5, 300.0, 10, silence=2.0)
    assert (pair in found) is orphaned
    assert (pair in await mstore.recovery.find_orphaned_running(0.5, 10, silence=2.0)) is orphaned
    # Without the silence rule (None) the lock alone decides, as before.
    assert pair in await mstore.recovery.find_orphaned_running(0.5, 10)


async def test_a_held_lock_protects_a_silent_holder(
    mstore: Store, raw: asyncpg.Connection, database_url: str
) -> None:
    pair = await running_job(mstore, raw, beat_age=60.0)
    presence = await Presence.acquire(database_url, HOLDER)
    try:
        found, _ = await mstore.recovery.find_rescuable_running(0.5, 300.0, 10, silence=2.0)
        assert pair not in found
    finally:
        await presence.close()


async def test_rescue_rechecks_the_holder_silence_in_its_final_write(
    mstore: Store, raw: asyncpg.Connection
) -> None:
    pair = await running_job(mstore, raw, beat_age=5.0)
    found, _ = await mstore.recovery.find_rescuable_running(0.5, 300.0, 10, silence=2.0)
    assert found == [pair]
    # The holder beats between the find and the write: the write must not rescue.
    await mstore.runtimes.touch_runtime(HOLDER)
    outcome = await mstore.recovery.rescue(
        found,
        from_states=["running"],
        reason="test",
        retry_base_delay=0.0,
        recheck=RescueRecheck(holder_silent_for=2.0),
    )
    assert (outcome.retried, outcome.failed) == (0, 0)
    assert await raw.fetchval("SELECT state FROM awa.jobs WHERE id = $1", pair[0]) == "running"


async def test_rescue_rechecks_the_heartbeat_in_its_final_write(
    mstore: Store, raw: asyncpg.Connection
) -> None:
    job_id, lease = await running_job(mstore, raw, beat_age=None)
    # The heartbeat lands between the find and the write: the write must not rescue.
    await mstore.jobs.heartbeat([job_id], [lease], [None])
    outcome = await mstore.recovery.rescue(
        [(job_id, lease)],
        from_states=["running"],
        reason="test",
        retry_base_delay=0.0,
        recheck=RescueRecheck(heartbeat_older_than=5.0),
    )
    assert (outcome.retried, outcome.failed) == (0, 0)
    # Control: without the re-check the same write rescues it.
    outcome = await mstore.recovery.rescue(
        [(job_id, lease)], from_states=["running"], reason="test", retry_base_delay=0.0
    )
    assert outcome.retried == 1


async def test_admin_metadata_does_not_count_a_runtime_killed_with_sigkill(
    mstore: Store, raw: asyncpg.Connection
) -> None:
    await mstore.runtimes.register_runtime("alive", "host", 1, "worker", {"q": 1}, ["k"])
    await mstore.runtimes.register_runtime("killed", "host", 2, "worker", {"q": 1}, ["k"])
    # Killed with SIGKILL: never marked stopped, silent for two minutes.
    await raw.execute(
        "UPDATE awa.runtimes SET last_seen_at = now() - interval '2 minutes'"
        " WHERE instance_id = 'killed'"
    )
    await mstore.maintenance.refresh_admin_metadata()
    handled = await raw.fetchval(
        "SELECT handled_by FROM awa.admin_metadata WHERE queue = 'q' AND kind = 'k'"
    )
    assert handled == 1


async def test_a_runtime_whose_row_was_collected_registers_again(
    database_url: str, raw: asyncpg.Connection
) -> None:
    """A runtime unseen long enough (a partition) loses its liveness row to ``gc_runtimes``;
    beating zero rows, it would look silent forever. It writes the row again."""
    client = awa.Client(database_url)
    release = anyio.Event()

    @client.handler("hold")
    async def hold(ctx: awa.JobContext) -> None:
        await release.wait()

    async with client:
        runtime = awa.Runtime(
            client, awa.RuntimeConfig(queues={"default": 1}), run_maintenance=False
        )
        async with runtime:
            await client.insert("hold", {})
            await raw.execute(
                "DELETE FROM awa.runtimes WHERE instance_id = $1", runtime.instance_id
            )
            back = await wait_for(
                lambda: raw.fetchval(
                    "SELECT count(*) FROM awa.runtimes WHERE instance_id = $1", runtime.instance_id
                ),
                10,
                what="the liveness row to be written again",
            )
            assert back == 1
            release.set()
