"""Lifecycle events through the outbox, on a real PostgreSQL and a real HTTP server on
loopback: events are written by the statement that makes the change (and vanish with it on
rollback), and the ``deliver_events`` branch delivers them per (event, sink) with retry and
backoff: an outage loses nothing and leaves the jobs alone, a broken sink does not hold up a
healthy one, refused events are parked and can be flushed or purged, runs are bounded.

Time is pinned with ``FakeClock`` (the database receives its ``now``), so backoff steps are
crossed by advancing the clock, not by sleeping.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import asyncpg
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import awa
from awa.config import MaintenanceConfig
from awa.cron import CronTable
from awa.db.queries import sql_text
from awa.events import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    CallableSink,
    Event,
    EventKind,
    EventRejected,
    WebhookSink,
    verify_signature,
)
from awa.maintenance import BranchContext
from awa.maintenance.branches.cron_evaluate import CronEvaluate
from awa.maintenance.branches.cron_sync import CronSync
from awa.maintenance.branches.deliver_events import DeliverEvents
from awa.model import InsertParams, JobState
from awa.store import FinishedAttempt, Rescheduled, Store
from awa.store.events import DeliveryResult
from awa.telemetry import Instruments

T0 = datetime(2030, 1, 1, tzinfo=UTC)
SECRET = "s3cret"


@pytest.fixture
async def mstore(database_url: str) -> AsyncIterator[Store]:
    store = await Store.open(database_url, max_size=4)
    yield store
    await store.close()


def ctx_for(store: Store, clock: awa.Clock) -> BranchContext:
    return BranchContext(store=store, clock=clock, config=MaintenanceConfig())


async def fail_jobs(store: Store, n: int, clock: awa.FakeClock, kind: str = "flaky") -> list[int]:
    """Insert ``n`` single-attempt jobs, claim them and record their failure (the path the
    completion buffer takes)."""
    for i in range(n):
        await store.jobs.insert_job(InsertParams(kind, {"i": i}, max_attempts=1), now=clock.now())
    jobs = await store.jobs.claim_batch("default", [kind], n, "test-worker", clock.now())
    error = {"kind": "exception", "message": "boom"}
    items = [FinishedAttempt(j.id, j.run_lease, JobState.FAILED, error) for j in jobs]
    assert len(await store.jobs.finalize_batch(items, clock.now())) == n
    return sorted(j.id for j in jobs)


async def job_states(raw: asyncpg.Connection, ids: list[int]) -> list[str]:
    rows = await raw.fetch(
        "SELECT state::text FROM awa.all_jobs WHERE id = ANY($1::bigint[]) ORDER BY id", ids
    )
    return [r["state"] for r in rows]


async def events_of(raw: asyncpg.Connection, kind: str | None = None) -> list[dict[str, Any]]:
    rows = await raw.fetch(
        "SELECT id, kind, job_id, schedule, payload::text AS payload FROM awa.events"
        " WHERE $1::text IS NULL OR kind = $1 ORDER BY id",
        kind,
    )
    return [{**dict(r), "payload": json.loads(r["payload"])} for r in rows]


# --------------------------------------------------------------- a loopback HTTP receiver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """A minimal HTTP/1.1 endpoint (keep-alive, Content-Length bodies) whose answer the test
    sets: ``status`` for every request, or ``decide(event_id)`` per event."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.status = 200
        self.decide: Callable[[int], int] | None = None
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.accepted: Counter[int] = Counter()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/awa?token=t0ps3cret"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while request_line := await reader.readline():
                assert request_line.startswith(b"POST /hooks/awa?token=t0ps3cret ")
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((headers, body))
                event_id = int(json.loads(body)["id"])
                status = self.decide(event_id) if self.decide else self.status
                if 200 <= status < 300:
                    self.accepted[event_id] += 1
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok".encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(free_port())
    yield r
    await r.stop()


def backlog(reader: InMemoryMetricReader) -> dict[str, float]:
    """The ``awa.outbox.backlog`` gauge as sink → value."""
    points: dict[str, float] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "awa.outbox.backlog":
                    for p in metric.data.data_points:
                        points[str((p.attributes or {})["awa.outbox.sink"])] = p.value  # type: ignore[union-attr]
    return points


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


# -------------------------------------------------------------------------- delivery


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
    sink_row = await raw.fetchrow("SELECT * FROM awa.event_sinks WHERE name = 'hooks'")
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
    sinks = [
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
