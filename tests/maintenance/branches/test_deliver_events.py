"""``deliver_events``: delivery of the outbox per (event, sink) with retry and backoff, on a
real PostgreSQL and a real HTTP server on loopback. An outage loses nothing and leaves the
jobs alone, requests are signed, a broken sink does not hold up a healthy one, refused
events are parked and can be flushed or purged, runs are bounded, and a leader without a
registered sink still queues for it.

Time is pinned with ``FakeClock`` (the database receives its ``now``), so backoff steps are
crossed by advancing the clock, not by sleeping. How events are written is tested in
``tests/events/test_events.py``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import UTC, datetime, timedelta

import anyio
import asyncpg
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import awa
from awa.config import MaintenanceConfig
from awa.events import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    CallableSink,
    Event,
    EventKind,
    Sink,
    WebhookSink,
    verify_signature,
)
from awa.maintenance import BranchContext
from awa.maintenance.branches.deliver_events import DeliverEvents
from awa.model import InsertParams
from awa.store import Store
from awa.telemetry import Instruments
from support.branch_world import one
from support.events_world import (
    SECRET,
    T0,
    Receiver,
    backlog,
    events_of,
    fail_jobs,
    free_port,
    job_states,
)
from support.store_world import ctx_for


async def test_outage_retries_with_backoff_then_delivers_everything_once(
    mstore: Store,
    raw: asyncpg.Connection,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = awa.FakeClock(T0)
    ids = await fail_jobs(mstore, 5, clock)
    sink = WebhookSink("hooks", receiver.url, secret=SECRET, connect_timeout=1.0)
    branch = DeliverEvents([sink])
    reader = InMemoryMetricReader()
    ctx = BranchContext(
        store=mstore,
        clock=clock,
        config=MaintenanceConfig(),
        metrics=Instruments(MeterProvider(metric_readers=[reader])),
    )

    # Refused connections: one probe fails, the rest keep their place; the sink rests.
    with caplog.at_level(logging.INFO, logger="awa.events"):
        first = await branch.run_once(ctx)
        resting = await branch.run_once(ctx)
    assert first.rows == {
        "fanned_out": 5,
        "delivered": 0,
        "failed": 1,
        "deferred": 4,
        "parked": 0,
        "expired": 0,
    }
    assert resting.rows["failed"] == resting.rows["deferred"] == 0  # backing off: no probe
    assert backlog(reader) == {"hooks": 5}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "'hooks' is unavailable" in warnings[0]
    assert "ConnectError" in warnings[0] and "t0ps3cret" not in warnings[0]

    # Each probe fails again and the rest doubles (1 s, 2 s, ..., capped, ±20 %).
    rests = []
    for _ in range(3):
        before = await raw.fetchval("SELECT retry_at FROM awa.event_sinks WHERE name = 'hooks'")
        clock.advance((before - clock.now()).total_seconds() + 0.01)
        assert (await branch.run_once(ctx)).rows["failed"] == 1
        after = await raw.fetchval("SELECT retry_at FROM awa.event_sinks WHERE name = 'hooks'")
        rests.append((after - clock.now()).total_seconds())
    assert rests[1] > rests[0] and rests[2] > rests[1]
    # The server comes back but answers 500 (still unavailable).
    await receiver.start()
    receiver.status = 500
    clock.advance(rests[-1] + 0.01)
    assert (await branch.run_once(ctx)).rows["failed"] == 1
    sink_row = await one(raw, "SELECT * FROM awa.event_sinks WHERE name = 'hooks'")
    assert sink_row["failures"] == 5 and sink_row["last_error"].startswith("HTTP 500")
    assert receiver.accepted == Counter()
    assert await job_states(raw, ids) == ["failed"] * 5  # the jobs never noticed

    # Recovery: everything is delivered, each event exactly once, none parked or dropped.
    receiver.status = 200
    clock.advance(120)
    with caplog.at_level(logging.INFO, logger="awa.events"):
        caplog.clear()
        recovered = await branch.run_once(ctx)
        idle = await branch.run_once(ctx)
    assert recovered.rows["delivered"] == 5 and idle.rows["delivered"] == 0
    assert any("recovered" in r.getMessage() for r in caplog.records)
    event_ids = [e["id"] for e in await events_of(raw)]
    assert receiver.accepted == Counter(event_ids)
    outstanding = await raw.fetchval(
        "SELECT count(*) FROM awa.event_deliveries WHERE delivered_at IS NULL"
    )
    assert outstanding == 0
    assert await job_states(raw, ids) == ["failed"] * 5
    [status] = await mstore.events.event_sink_status()
    assert (status["failures"], status["pending"], status["delivered_total"]) == (0, 0, 5)
    assert backlog(reader) == {"hooks": 0}


async def test_webhook_request_is_signed_and_carries_the_idempotency_key(
    mstore: Store, raw: asyncpg.Connection, receiver: Receiver
) -> None:
    clock = awa.FakeClock(T0)
    await receiver.start()
    await fail_jobs(mstore, 2, clock)
    branch = DeliverEvents([WebhookSink("hooks", receiver.url, secret=SECRET)])
    assert (await branch.run_once(ctx_for(mstore, clock))).rows["delivered"] == 2
    for headers, body in receiver.requests:
        payload = json.loads(body)
        assert payload["kind"] == "job.failed" and payload["data"]["error"]["message"] == "boom"
        assert headers["idempotency-key"] == f"awa-event-{payload['id']}"
        assert headers["x-awa-event-id"] == str(payload["id"])
        timestamp = headers[TIMESTAMP_HEADER.lower()]
        signature = headers[SIGNATURE_HEADER.lower()]
        assert signature.startswith("sha256=")
        assert verify_signature(SECRET, body, timestamp, signature)
        assert not verify_signature("other secret", body, timestamp, signature)
        assert not verify_signature(SECRET, body + b" ", timestamp, signature)
        stale = datetime.fromtimestamp(float(timestamp), UTC) + timedelta(minutes=10)
        assert not verify_signature(SECRET, body, timestamp, signature, now=stale)


async def test_broken_sink_does_not_block_a_healthy_one(
    mstore: Store, raw: asyncpg.Connection
) -> None:
    clock = awa.FakeClock(T0)
    await fail_jobs(mstore, 3, clock)
    await mstore.jobs.insert_job(InsertParams("slow", max_attempts=2), now=clock.now())
    [job] = await mstore.jobs.claim_batch("default", ["slow"], 1, "w", clock.now())
    await mstore.recovery.rescue(
        [(job.id, job.run_lease)],
        from_states=["running"],
        reason="x",
        retry_base_delay=0,
        now=clock.now(),
    )
    seen: list[Event] = []
    failures_only: list[Event] = []

    async def collect(event: Event) -> None:
        seen.append(event)

    broken = WebhookSink("broken", f"http://127.0.0.1:{free_port()}/", secret=SECRET)
    sinks: list[Sink] = [
        broken,
        CallableSink("all", collect),
        CallableSink("failures", failures_only.append, kinds=[EventKind.JOB_FAILED]),
    ]
    result = await DeliverEvents(sinks).run_once(ctx_for(mstore, clock))
    assert result.rows["delivered"] == 4 + 3 and result.rows["failed"] == 1
    assert [e.kind for e in seen] == ["job.failed"] * 3 + ["job.rescued"]
    assert [e.kind for e in failures_only] == ["job.failed"] * 3  # a sync function: in a thread
    pending = await raw.fetch(
        "SELECT sink, count(*) AS n FROM awa.event_deliveries WHERE delivered_at IS NULL"
        " GROUP BY sink"
    )
    assert {r["sink"]: r["n"] for r in pending} == {"broken": 4}


async def test_refused_events_are_parked_then_flushed_or_purged(
    mstore: Store,
    raw: asyncpg.Connection,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = awa.FakeClock(T0)
    await receiver.start()
    await fail_jobs(mstore, 3, clock)
    first_id = min(e["id"] for e in await events_of(raw))
    receiver.decide = lambda event_id: 422 if event_id == first_id else 200
    branch = DeliverEvents(
        [WebhookSink("hooks", receiver.url, secret=SECRET)], park_after_rejections=2
    )
    ctx = ctx_for(mstore, clock)
    one = await branch.run_once(ctx)
    # The refusal does not stop the sink: the two other events go through in the same run.
    assert (one.rows["delivered"], one.rows["failed"], one.rows["parked"]) == (2, 1, 0)
    clock.advance(5)
    with caplog.at_level(logging.WARNING, logger="awa.events"):
        two = await branch.run_once(ctx)
    assert (two.rows["failed"], two.rows["parked"]) == (1, 1)
    [warning] = [r.getMessage() for r in caplog.records]
    assert "parked as undeliverable" in warning and f"event {first_id} after 2 attempts" in warning
    assert "HTTP 422" in warning
    clock.advance(3600)
    assert (await branch.run_once(ctx)).rows["failed"] == 0  # parked: not retried

    # Flush: the operator fixed the receiver; the parked event is retried and delivered.
    receiver.decide = None
    assert await mstore.events.event_flush("hooks", now=clock.now()) == 1
    assert (await branch.run_once(ctx)).rows["delivered"] == 1
    assert receiver.accepted[first_id] == 1

    # Purge: a parked delivery is dropped only on request; the event then ages out.
    await fail_jobs(mstore, 1, clock)
    receiver.status = 400
    for _ in range(2):
        await branch.run_once(ctx)
        clock.advance(5)
    assert await mstore.events.event_purge("hooks") == 1
    clock.advance(8 * 86400)
    assert (await branch.run_once(ctx)).rows["expired"] == 4
    assert await events_of(raw) == []


async def test_each_run_is_bounded_by_batch_and_budget(
    mstore: Store, raw: asyncpg.Connection
) -> None:
    clock = awa.FakeClock(T0)
    await fail_jobs(mstore, 7, clock)
    got: list[int] = []

    async def quick(event: Event) -> None:
        got.append(event.id)

    branch = DeliverEvents([CallableSink("quick", quick)], batch=3, fan_out_batch=5)
    ctx = ctx_for(mstore, clock)
    first = await branch.run_once(ctx)
    assert (first.rows["fanned_out"], first.rows["delivered"], first.more) == (5, 3, True)
    second = await branch.run_once(ctx)
    assert (second.rows["fanned_out"], second.rows["delivered"], second.more) == (2, 3, True)
    third = await branch.run_once(ctx)
    assert (third.rows["delivered"], third.more) == (1, False)
    assert got == sorted(got) and len(set(got)) == 7  # in order, each once

    # The run budget: a slow sink is stopped mid-batch; the rest is deferred, not failed.
    await fail_jobs(mstore, 6, clock, kind="flaky2")

    async def slow(event: Event) -> None:
        await anyio.sleep(0.2)

    budgeted = DeliverEvents([CallableSink("slow", slow)], run_budget=0.3)
    result = await budgeted.run_once(ctx_for(mstore, awa.SystemClock()))
    delivered, deferred = result.rows["delivered"], result.rows["deferred"]
    # Only events fanned out while a sink is configured reach it: the 6 new ones.
    assert 1 <= delivered < 6 and delivered + deferred == 6 and result.rows["failed"] == 0
    attempts = await raw.fetchval(
        "SELECT sum(attempts) FROM awa.event_deliveries WHERE sink = 'slow'"
    )
    assert attempts == delivered


async def test_a_leader_without_the_sink_queues_for_it_until_it_is_forgotten(
    mstore: Store, raw: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """A maintenance-only leader (no sinks configured) must not skip a registered sink."""
    clock = awa.FakeClock(T0)
    got: list[Event] = []
    app_leader = DeliverEvents([CallableSink("alerts", got.append, kinds=["job.failed"])])
    bare_leader = DeliverEvents([])
    await app_leader.run_once(ctx_for(mstore, clock))  # registers the sink
    await fail_jobs(mstore, 2, clock)
    with caplog.at_level(logging.WARNING, logger="awa.events"):
        first = await bare_leader.run_once(ctx_for(mstore, clock))
        clock.advance(61)
        await bare_leader.run_once(ctx_for(mstore, clock))
    assert first.rows["fanned_out"] == 2 and first.rows["delivered"] == 0
    [warning] = [r.getMessage() for r in caplog.records]
    assert "2 event deliveries wait for sink 'alerts'" in warning
    assert (await app_leader.run_once(ctx_for(mstore, clock))).rows["delivered"] == 2
    assert [e.kind for e in got] == ["job.failed"] * 2

    # Forgotten on purpose: its waiting deliveries go and no new ones are queued.
    await fail_jobs(mstore, 1, clock, kind="flaky2")
    await bare_leader.run_once(ctx_for(mstore, clock))
    assert await mstore.events.event_forget_sink("alerts") == 1
    await fail_jobs(mstore, 1, clock, kind="flaky3")
    assert (await bare_leader.run_once(ctx_for(mstore, clock))).rows["fanned_out"] == 1
    assert await raw.fetchval("SELECT count(*) FROM awa.event_deliveries") == 2
    assert await mstore.events.event_sink_status() == []
