"""Lifecycle events written through the outbox, on a real PostgreSQL: each is written by the
statement that makes the change (and vanishes with it on rollback), for failures, rescues
and cron fires; a stale delivery claim cannot overwrite a newer one; sink declarations are
validated.

Time is pinned with ``FakeClock`` (the database receives its ``now``). Delivery, the
``deliver_events`` branch, is tested in ``tests/maintenance/branches/test_deliver_events.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

import awa
from awa.cron import CronTable
from awa.db.queries import sql_text
from awa.events import CallableSink, Event, EventRejected, WebhookSink
from awa.maintenance.branches.cron_evaluate import CronEvaluate
from awa.maintenance.branches.cron_sync import CronSync
from awa.maintenance.branches.deliver_events import DeliverEvents
from awa.model import InsertParams, JobState
from awa.store import FinishedAttempt, Rescheduled, Store
from awa.store.events import DeliveryResult
from support.events_world import SECRET, T0, events_of, fail_jobs, job_states
from support.store_world import ctx_for

# ------------------------------------------------------------------ events are written


async def test_failed_job_writes_exactly_one_event_in_its_statement(
    mstore: Store, raw: asyncpg.Connection
) -> None:
    clock = awa.FakeClock(T0)
    [job_id] = await fail_jobs(mstore, 1, clock)
    [event] = await events_of(raw)
    assert event["kind"] == "job.failed" and event["job_id"] == job_id
    assert event["payload"]["kind"] == "flaky" and event["payload"]["attempt"] == 1
    assert event["payload"]["error"]["message"] == "boom"
    assert event["payload"]["rescued"] is False

    # Completions, retries, snoozes and cancellations write no event.
    for i in range(4):
        await mstore.jobs.insert_job(InsertParams("other", {"i": i}), now=clock.now())
    a, b, c, d = await mstore.jobs.claim_batch("default", ["other"], 4, "w", clock.now())
    await mstore.jobs.complete_batch([a.id], [a.run_lease], [None], clock.now())
    await mstore.jobs.finalize_batch(
        [FinishedAttempt(b.id, b.run_lease, JobState.CANCELLED, None)], clock.now()
    )
    later = clock.now() + timedelta(minutes=5)
    await mstore.jobs.reschedule_batch(
        [
            Rescheduled(c.id, c.run_lease, JobState.RETRYABLE, later, {}, False),
            Rescheduled(d.id, d.run_lease, JobState.SCHEDULED, later, None, True),
        ],
        clock.now(),
    )
    assert [e["job_id"] for e in await events_of(raw)] == [job_id]


async def test_failure_event_rolls_back_with_its_change(
    mstore: Store, raw: asyncpg.Connection
) -> None:
    await mstore.jobs.insert_job(InsertParams("flaky", max_attempts=1))
    [job] = await mstore.jobs.claim_batch("default", ["flaky"], 1, "w")

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with mstore.db.connection() as c, c.transaction():
            await c.fetch(
                sql_text("finalize_batch"),
                [job.id],
                [job.run_lease],
                ["failed"],
                [{"message": "boom"}],
                None,
                None,
            )
            assert await c.fetchval("SELECT count(*) FROM awa.events") == 1
            raise Abort
    assert await events_of(raw) == []
    assert await job_states(raw, [job.id]) == ["running"]
    # A stale result (lease moved on) changes nothing and writes nothing.
    assert (
        await mstore.jobs.finalize_batch(
            [FinishedAttempt(job.id, job.run_lease + 1, JobState.FAILED, None)]
        )
        == set()
    )
    assert await events_of(raw) == []


async def test_rescue_writes_rescued_and_failed_events(
    mstore: Store, raw: asyncpg.Connection
) -> None:
    retried = await mstore.jobs.insert_job(InsertParams("slow", max_attempts=3))
    exhausted = await mstore.jobs.insert_job(InsertParams("slow", max_attempts=1))
    jobs = await mstore.jobs.claim_batch("default", ["slow"], 2, "dead-worker")
    outcome = await mstore.recovery.rescue(
        [(j.id, j.run_lease) for j in jobs],
        from_states=["running"],
        reason="holder is gone",
        retry_base_delay=0.0,
    )
    assert (outcome.retried, outcome.failed) == (1, 1)
    by_job: dict[int, list[str]] = {}
    for e in await events_of(raw):
        by_job.setdefault(e["job_id"], []).append(e["kind"])
        assert e["payload"].get("reason", "holder is gone") == "holder is gone"
    assert by_job == {retried.id: ["job.rescued"], exhausted.id: ["job.rescued", "job.failed"]}
    rescued = await events_of(raw, "job.rescued")
    assert {e["payload"]["outcome"] for e in rescued} == {"retried", "failed"}
    assert {e["payload"]["claimed_by"] for e in rescued} == {"dead-worker"}
    [failed] = await events_of(raw, "job.failed")
    assert failed["payload"]["rescued"] is True


async def test_cron_fire_and_missed_fire_write_events(
    mstore: Store, raw: asyncpg.Connection
) -> None:
    clock = awa.FakeClock(datetime(2026, 1, 5, 12, tzinfo=UTC))
    table = CronTable()
    table.add("tick", "*/10 * * * * *", "report", miss_tolerance=5.0)
    await CronSync(table, "test").run_once(ctx_for(mstore, clock))
    clock.advance(10.1)
    assert (await CronEvaluate().run_once(ctx_for(mstore, clock))).rows["fired"] == 1
    [fired] = await events_of(raw, "cron.fired")
    job_id = await raw.fetchval("SELECT id FROM awa.jobs WHERE kind = 'report'")
    assert fired["schedule"] == "tick" and fired["job_id"] == job_id
    fire_at = datetime(2026, 1, 5, 12, 0, 10, tzinfo=UTC)
    assert datetime.fromisoformat(fired["payload"]["scheduled_at"]) == fire_at

    # A losing compare-and-set enqueues nothing and writes no event.
    mark = await raw.fetchval("SELECT evaluated_through FROM awa.cron_schedules")
    lost = await mstore.cron.cron_advance(
        "tick",
        expected_mark=mark - timedelta(seconds=1),
        new_mark=mark + timedelta(seconds=10),
        fires=[InsertParams("report")],
        last_fire_at=None,
        missed=0,
        last_missed_at=None,
        overlapped=0,
        next_fire_at=None,
    )
    assert lost is None and len(await events_of(raw, "cron.fired")) == 1

    clock.advance(6)  # the fire's job did not complete within the 5 s tolerance
    branch = CronEvaluate()
    second = await branch.run_once(ctx_for(mstore, clock))
    third = await branch.run_once(ctx_for(mstore, clock))
    assert (second.rows["missed_alert"], third.rows["missed_alert"]) == (1, 0)
    [missed] = await events_of(raw, "cron.missed")
    assert datetime.fromisoformat(missed["payload"]["scheduled_at"]) == fire_at
    assert missed["payload"]["misfire"] == "skip" and missed["payload"]["last_success_at"] is None


async def test_a_stale_claim_cannot_overwrite_a_newer_one(mstore: Store) -> None:
    clock = awa.FakeClock(T0)
    await fail_jobs(mstore, 1, clock)
    await mstore.events.event_fan_out([("s", None)], 10, clock.now())
    [old] = await mstore.events.event_claim("s", 10, 60.0, clock.now())
    clock.advance(61)  # the first holder overran its claim
    [new] = await mstore.events.event_claim("s", 10, 60.0, clock.now())
    assert new.lease == old.lease + 1
    stale = DeliveryResult(old.event.id, old.lease, "delivered", old.due_at)
    assert (
        await mstore.events.event_record("s", [stale], park_after_rejections=1, now=clock.now())
        == []
    )


async def test_sink_declarations_are_validated() -> None:
    with pytest.raises(awa.ValidationError, match="kinds"):
        CallableSink("x", print, kinds=["job.faild"])
    with pytest.raises(awa.ValidationError, match="url"):
        WebhookSink("x", "ftp://example.com/", secret=SECRET)
    with pytest.raises(awa.ValidationError, match="secret"):
        WebhookSink("x", "https://example.com/", secret="")
    with pytest.raises(ValueError, match="duplicate sink names"):
        DeliverEvents([CallableSink("x", print), CallableSink("x", print)])

    async def reject(event: Event) -> None:
        raise EventRejected("no")

    assert CallableSink("r", reject).kinds is None
