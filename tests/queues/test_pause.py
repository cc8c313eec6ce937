"""Pausing a queue (ADR 024) on a real PostgreSQL with real runtimes: a paused queue is
not claimed (its jobs stay available, untouched) while other queues run, a resume wakes the
dispatchers at once instead of at their next poll, and bad or unknown names are typed
errors that store nothing."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import anyio
import asyncpg
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint

import awa
from awa.db.queries import paired_queries
from awa.errors import ValidationError
from awa.maintenance.branches.queue_stats import QueueStats
from awa.model import InsertParams
from awa.store import Store
from awa.telemetry import Instruments
from support.store_world import ctx_for


class Tally:
    """Handler runs per queue; ``until`` waits for a condition on them without polling."""

    def __init__(self) -> None:
        self.ran: Counter[str] = Counter()
        self._changed = anyio.Event()

    def add(self, queue: str) -> None:
        self.ran[queue] += 1
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def until(self, check: Callable[[Counter[str]], bool], timeout: float) -> None:
        with anyio.fail_after(timeout):
            while not check(self.ran):
                await self._changed.wait()


def two_queue_client(url: str, tally: Tally) -> awa.Client:
    """A client with one handler on queue ``a`` and one on ``b``, counting their runs."""
    client = awa.Client(url)

    def handler(queue: str) -> Callable[[awa.JobContext], Any]:
        async def run(ctx: awa.JobContext) -> None:
            tally.add(queue)

        return run

    client.registry.register("in_a", handler("a"), queue="a")
    client.registry.register("in_b", handler("b"), queue="b")
    return client


def config(poll_interval: float) -> awa.RuntimeConfig:
    return awa.RuntimeConfig(
        queues={"a": 4, "b": 4},
        poll_interval=poll_interval,
        heartbeat_interval=0.2,
        shutdown_grace=5.0,
    )


async def untouched(raw: asyncpg.Connection, queue: str) -> list[tuple[str, int, int]]:
    """(state, attempt, lease generation) of every job of ``queue``: the generation counts
    the claims (a lease's low half is random, ADR 040)."""
    rows = await raw.fetch(
        "SELECT state::text, attempt, run_lease >> 32 FROM awa.all_jobs"
        " WHERE queue = $1 ORDER BY id",
        queue,
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def test_a_paused_queue_is_not_claimed_over_many_polls_while_others_run(
    database_url: str, raw: asyncpg.Connection
) -> None:
    tally = Tally()
    client = two_queue_client(database_url, tally)
    async with client:
        # A 50 ms poll: the 1.5 s below is ~30 poll cycles of the paused dispatcher, on
        # top of the wake-up every insert into "a" sends it.
        runtime = awa.Runtime(client, config(poll_interval=0.05))
        async with runtime:
            outcome = await client.queues.pause("a", "provider outage", by="test")
            assert outcome.created
            for _ in range(3):
                await client.insert("in_a")
                await client.insert("in_b")
                await anyio.sleep(0.5)
                await client.insert("in_b")
            await tally.until(lambda ran: ran["b"] == 6, timeout=10)
            assert tally.ran == Counter({"b": 6})
            assert await untouched(raw, "a") == [("available", 0, 0)] * 3
            [dispatcher] = [d for d in runtime.dispatchers if d.queue == "a"]
            assert dispatcher.claimed == 0

            assert await client.queues.resume("a")
            await tally.until(lambda ran: ran["a"] == 3, timeout=10)
    assert await untouched(raw, "a") == [("completed", 1, 1)] * 3


async def test_resume_wakes_dispatchers_long_before_their_poll(
    database_url: str, raw: asyncpg.Connection
) -> None:
    tally = Tally()
    client = two_queue_client(database_url, tally)
    async with client:
        # A 60 s poll: only a notification can get the jobs run within the test's limit.
        runtime = awa.Runtime(client, config(poll_interval=60.0))
        async with runtime:
            assert runtime.wakeups is not None and runtime.wakeups.listening
            await client.queues.pause("a")
            for _ in range(3):
                await client.insert("in_a")
            # The inserts' own wake-ups reach the dispatcher, which claims nothing and goes
            # back to its 60 s wait.
            await anyio.sleep(0.5)
            assert tally.ran["a"] == 0
            assert await untouched(raw, "a") == [("available", 0, 0)] * 3
            assert await client.queues.resume("a")
            await tally.until(lambda ran: ran["a"] == 3, timeout=5)
    assert tally.ran == Counter({"a": 3})


async def test_pause_is_idempotent_and_resume_reports_whether_it_changed_anything(
    database_url: str,
) -> None:
    async with awa.Client(database_url) as client:
        await client.insert("work", queue="mail")
        first = await client.queues.pause("mail", "first reason", by="alice")
        again = await client.queues.pause("mail", "second reason", by="bob")
        assert first.created and not again.created
        assert again.pause == first.pause  # the first pause is kept as it was
        assert first.pause.reason == "first reason" and first.pause.paused_by == "alice"
        assert [p.queue for p in await client.queues.list()] == ["mail"]
        assert await client.queues.is_paused("mail")

        assert await client.queues.resume("mail")
        assert not await client.queues.resume("mail")
        assert await client.queues.list() == []
        assert not await client.queues.is_paused("mail")


async def test_pause_without_by_records_the_database_role(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        await client.insert("work", queue="mail")
        outcome = await client.queues.pause("mail")
        role = await client.store.db.run.fetchval("SELECT current_user")
        assert outcome.pause.paused_by == role
        assert outcome.pause.reason is None


@pytest.mark.parametrize(
    ("name", "reason", "field"),
    [
        ("nobody-knows-me", None, "queue"),
        ("", None, "queue"),
        ("   ", None, "queue"),
        ("q" * 101, None, "queue"),
        ("bad\x00name", None, "queue"),
        (42, None, "queue"),
        ("mail", "", "reason"),
        ("mail", "r" * 1001, "reason"),
    ],
)
async def test_unknown_or_invalid_names_are_validation_errors_and_store_nothing(
    database_url: str, name: Any, reason: Any, field: str
) -> None:
    async with awa.Client(database_url) as client:
        await client.insert("work", queue="mail")
        with pytest.raises(ValidationError) as caught:
            await client.queues.pause(name, reason)
        assert caught.value.field == field
        assert await client.queues.list() == []


async def test_resume_of_an_invalid_name_is_a_validation_error(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        with pytest.raises(ValidationError):
            await client.queues.resume("")


async def test_a_queue_is_known_by_its_runtime_or_declaration_alone(database_url: str) -> None:
    """No job needed: a queue some runtime serves, or an application declared, can be
    paused ahead of its first job (an operator pausing before a deploy)."""
    client = awa.Client(database_url)
    client.describe_queue("reports", "monthly reports")

    @client.handler("send", queue="mail")
    async def send(ctx: awa.JobContext) -> None:
        return None

    async with client:
        with pytest.raises(ValidationError):
            await client.queues.pause("mail")
        cfg = awa.RuntimeConfig(queues={"mail": 1}, poll_interval=0.2, shutdown_grace=5.0)
        async with awa.Runtime(client, cfg):
            assert (await client.queues.pause("mail")).created  # served by a runtime
        # Declared (published when the runtime started), served by nobody now.
        assert (await client.queues.pause("reports")).created


async def test_queue_stats_show_paused_queues_even_without_jobs(database_url: str) -> None:
    client = awa.Client(database_url)
    client.describe_queue("idle", "declared, no jobs yet")
    async with client:
        await client.store.observe.publish_declarations(client.declarations(), "test")
        await client.insert("work", queue="mail")
        await client.insert("work", queue="other")
        await client.queues.pause("mail")
        await client.queues.pause("idle")
        stats = {(c.queue, c.state): (c.count, c.paused) for c in await client.queue_stats()}
    assert stats == {
        ("idle", "available"): (0, True),
        ("mail", "available"): (1, True),
        ("other", "available"): (1, False),
    }


async def test_the_claim_checks_the_pause_once_through_its_primary_key(
    store: Store, raw: asyncpg.Connection
) -> None:
    """The claim's plan: the pause lookup is an InitPlan on the pause table's primary key
    (once per statement), the jobs are read through the claim index, and while the queue
    is paused that index is never read at all. Counts from EXPLAIN ANALYZE, no timings."""
    await raw.execute(
        "INSERT INTO awa.jobs (kind, queue, state, priority, original_priority, max_attempts,"
        " run_at, created_at) SELECT 'work', 'q' || (g % 5), 'available', 2, 2, 5, now(), now()"
        " FROM generate_series(1, 5000) g"
    )
    await raw.execute("ANALYZE awa.jobs")
    claim = paired_queries("jobs")["claim_batch"].sql

    def nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
        return [node, *(n for child in node.get("Plans", []) for n in nodes(child))]

    async def claim_plan() -> list[dict[str, Any]]:
        """The executed claim's plan nodes; the claim itself is rolled back."""
        tx = raw.transaction()
        await tx.start()
        try:
            text = await raw.fetchval(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, FORMAT JSON) " + claim,
                "q1",
                ["work"],
                10,
                "explain",
                None,
            )
        finally:
            await tx.rollback()
        return nodes(json.loads(text)[0]["Plan"])

    running = await claim_plan()
    pause_probe = [n for n in running if n.get("Index Name") == "queue_pauses_pkey"]
    claim_scan = [n for n in running if n.get("Index Name") == "jobs_claim_idx"]
    assert [n["Parent Relationship"] for n in pause_probe] == ["InitPlan"]
    assert pause_probe[0]["Actual Loops"] == 1
    assert claim_scan and claim_scan[0]["Actual Rows"] == 20  # the head: 2 x the batch (ADR 035)
    assert not [n for n in running if n["Node Type"] == "Seq Scan"]

    await store.queues.pause("q1", "test", None)
    paused = await claim_plan()
    unread = [n for n in paused if n.get("Index Name") == "jobs_claim_idx"]
    assert unread and all(n["Actual Loops"] == 0 for n in unread)  # never executed
    assert await store.jobs.claim_batch("q1", ["work"], 10, "someone") == []
    assert len(await store.jobs.claim_batch("q2", ["work"], 10, "someone")) == 10


async def test_queue_stats_branch_feeds_the_paused_gauge(store: Store) -> None:
    """The leader's queue_stats run reports 1 for a paused queue (even an empty one), 0 for
    a queue with live jobs that is not paused, and 0 once a paused queue is resumed."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    ctx = replace(ctx_for(store), metrics=Instruments(provider))

    def paused_gauge() -> dict[str, float]:
        data = reader.get_metrics_data()
        assert data is not None
        return {
            str((point.attributes or {})["awa.queue"]): point.value
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "awa.queue.paused"
            for point in m.data.data_points
            if isinstance(point, NumberDataPoint)
        }

    await store.jobs.insert_job(InsertParams(kind="work", queue="mail"))
    await store.jobs.insert_job(InsertParams(kind="work", queue="other"))
    await store.queues.pause("mail", "test", None)
    await QueueStats().run_once(ctx)
    assert paused_gauge() == {"mail": 1.0, "other": 0.0}

    await store.queues.resume("mail")
    await store.jobs.insert_job(InsertParams(kind="work", queue="late"))
    await store.queues.pause("late", "test", None)
    await QueueStats().run_once(ctx)
    assert paused_gauge() == {"mail": 0.0, "other": 0.0, "late": 1.0}
    provider.shutdown()
