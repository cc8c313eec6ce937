"""Rescue wake-ups and operator cancel requests (``Store.rescue`` and the rescue
branches).

A rescued attempt is work that must run again: whoever acts next must hear of it at commit,
not at its next backstop poll. Requeued ``available``: the queue's dispatchers
(``awa_jobs``). Requeued ``retryable`` with a backoff (deadline and callback rescues): the
maintenance leader, through the due time on ``awa_due``, so promotion runs when the retry is
due rather than at ``promote_scheduled``'s next interval (5 s by default).

No wall-clock duration is asserted: notifications are checked by order (a round trip on the
listening connection after the rescue committed delivers everything committed before it),
and the end-to-end test runs promotion with a one-hour interval, so only the wake-up can
promote within the test's generous bound.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import asyncpg
import pytest

import awa
from awa.config import MaintenanceConfig
from awa.maintenance import BranchContext, MaintenanceLeader
from awa.maintenance.branches.promote_scheduled import PromoteScheduled
from awa.maintenance.branches.rescue_expired_deadlines import RescueExpiredDeadlines
from awa.maintenance.branches.rescue_stale_heartbeats import RescueStaleHeartbeats
from awa.store import Store
from awa.store.recovery import RescueOutcome
from awa.telemetry import instruments
from support.listener import Listener, listener
from support.store_world import mstore

__all__ = ["listener", "mstore"]  # fixtures, used by name


async def _running(
    store: Store, count: int, *, queue: str = "default", max_attempts: int = 3
) -> list[awa.Job]:
    for _ in range(count):
        await store.jobs.insert_job(awa.InsertParams("a", queue=queue, max_attempts=max_attempts))
    jobs = await store.jobs.claim_batch(queue, ["a"], count, "gone-runtime")
    assert len(jobs) == count
    return sorted(jobs, key=lambda j: j.id)


async def wait_for(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 15.0) -> None:
    """Poll ``predicate`` until true, under a generous bound (no duration is asserted)."""
    with anyio.fail_after(timeout):
        while True:
            value = predicate()
            if not isinstance(value, bool):
                value = await value
            if value:
                return
            await anyio.sleep(0.02)


async def available(store: Store, job_id: int) -> bool:
    return (await store.admin.get_job(job_id)).state is awa.JobState.AVAILABLE


def _pairs(jobs: list[awa.Job]) -> list[tuple[int, int]]:
    return [(j.id, j.run_lease) for j in jobs]


async def test_rescue_into_retryable_announces_the_earliest_due_time(
    mstore: Store, listener: Listener
) -> None:
    jobs = await _running(mstore, 2)
    await listener.drain()  # the inserts' own wake-ups
    outcome = await mstore.recovery.rescue(
        _pairs(jobs), from_states=["running"], reason="deadline", retry_base_delay=1.0
    )
    assert (outcome.retried, outcome.failed, outcome.cancelled) == (2, 0, 0)
    run_ats = [(await mstore.admin.get_job(j.id)).run_at for j in jobs]
    assert {(await mstore.admin.get_job(j.id)).state for j in jobs} == {awa.JobState.RETRYABLE}
    got = await listener.drain()
    assert [c for c, _ in got] == ["awa_due"], got
    assert float(got[0][1]) == pytest.approx(min(run_ats).timestamp(), abs=1e-6)


async def test_rescue_into_available_wakes_the_queues_and_announces_nothing_due(
    mstore: Store, listener: Listener
) -> None:
    jobs = await _running(mstore, 1, queue="q1") + await _running(mstore, 1, queue="q2")
    await listener.drain()
    outcome = await mstore.recovery.rescue(
        _pairs(jobs), from_states=["running"], reason="gone", retry_base_delay=0.0
    )
    assert outcome == RescueOutcome(2, 0, frozenset({"q1", "q2"}), 0)
    assert sorted(await listener.drain()) == [("awa_jobs", "q1"), ("awa_jobs", "q2")]


async def test_rescue_that_fails_or_cancels_wakes_nobody(mstore: Store, listener: Listener) -> None:
    """Nothing runs again: no dispatcher or promotion needs waking."""
    last = await _running(mstore, 1, max_attempts=1)
    cancel = await _running(mstore, 1)
    await mstore.admin.cancel_job(cancel[0].id, "stop")
    await listener.drain()
    outcome = await mstore.recovery.rescue(
        _pairs(last + cancel), from_states=["running"], reason="deadline", retry_base_delay=1.0
    )
    assert outcome == RescueOutcome(0, 1, frozenset(), 1)
    assert await listener.drain() == []


async def test_stale_rescue_changes_and_notifies_nothing(mstore: Store, listener: Listener) -> None:
    (job,) = await _running(mstore, 1)
    assert await mstore.jobs.complete_batch([job.id], [job.run_lease], [None]) == {job.id}
    await listener.drain()
    outcome = await mstore.recovery.rescue(
        _pairs([job]), from_states=["running"], reason="deadline", retry_base_delay=1.0
    )
    assert outcome == RescueOutcome(0, 0, frozenset(), 0)
    assert await listener.drain() == []


# ---------------------------------------------------------------- the rescue branches


def _ctx(store: Store) -> BranchContext:
    config = MaintenanceConfig(startup_jitter=0, crash_grace=0.0, heartbeat_staleness=3600.0)
    return BranchContext(store=store, clock=awa.SystemClock(), config=config)


async def test_rescue_branches_report_cancel_requests_they_honoured(
    mstore: Store, raw: asyncpg.Connection
) -> None:
    """A cancel-requested attempt found by a rescue branch ends cancelled and is reported
    as ``cancelled`` (not as retried or failed, and not in ``awa.jobs.rescued``)."""
    first, second = await _running(mstore, 2)
    await raw.execute(
        "UPDATE awa.jobs SET deadline_at = now() - interval '1 hour' WHERE id = ANY ($1)",
        [first.id, second.id],
    )
    await mstore.admin.cancel_job(first.id, "operator says stop")
    await mstore.admin.cancel_job(second.id, "not needed")
    result = await RescueExpiredDeadlines(grace=0.0).run_once(_ctx(mstore))
    assert result.rows == {"retried": 0, "failed": 0, "cancelled": 2}
    for job, reason in ((first, "operator says stop"), (second, "not needed")):
        final = await mstore.admin.get_job(job.id)
        assert final.state is awa.JobState.CANCELLED
        assert final.errors[-1]["message"] == reason

    (crashed,) = await _running(mstore, 1)  # its holder has no presence lock: orphaned
    await mstore.admin.cancel_job(crashed.id, "stop")
    result = await RescueStaleHeartbeats().run_once(_ctx(mstore))
    assert result.rows == {
        "orphaned_retried": 0,
        "stale_retried": 0,
        "failed": 0,
        "cancelled": 1,
    }
    assert (await mstore.admin.get_job(crashed.id)).state is awa.JobState.CANCELLED
    assert await raw.fetchval("SELECT count(*) FROM awa.events") == 0


# ------------------------------------------------------------------------- end to end


async def test_leader_promotes_a_deadline_rescued_retry_without_waiting_for_its_poll(
    database_url: str, mstore: Store
) -> None:
    """The leader runs promotion once an hour here: the rescued retry (due about 1 s after
    the rescue) can only become available in time through the rescue's ``awa_due``."""
    promote = PromoteScheduled(interval=3600.0)
    rescue = RescueExpiredDeadlines(grace=0.0, interval=0.05)
    config = MaintenanceConfig(startup_jitter=0, election_interval=0.2)
    leader = MaintenanceLeader(
        database_url, "leader", [promote, rescue], config, awa.SystemClock(), instruments()
    )
    async with anyio.create_task_group() as tg:
        await tg.start(leader.run)
        with anyio.fail_after(15):
            await leader.wait_until_leader()
        await wait_for(lambda: leader.stats["promote_scheduled"].runs >= 1)
        # promotion ran (nothing deferred) and now sleeps for an hour
        await mstore.jobs.insert_job(awa.InsertParams("a", timeout=0.05))
        (job,) = await mstore.jobs.claim_batch("default", ["a"], 1, "hung-runtime")
        await wait_for(lambda: available(mstore, job.id))
        final = await mstore.admin.get_job(job.id)
        assert final.attempt == 1  # the rescued attempt, promoted; not claimed again
        assert [e["kind"] for e in final.errors] == ["rescued"]
        assert leader.stats["promote_scheduled"].runs >= 2
        tg.cancel_scope.cancel()
