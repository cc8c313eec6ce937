"""Maintenance on its own thread and loop (ADR 013, issue 14 item 8): a handler that blocks
the runtime's event loop cannot delay the SLO lane.

The acceptance workload: a runtime that leads maintenance runs a handler that calls
``time.sleep(3)`` on its loop; while it blocks, another thread inserts 50 jobs due 0.5–3 s
later. A trigger records, by the database clock, the moment each job is promoted, so
promotion lateness (promoted minus ``run_at``) is measured where it happens, not through
the blocked loop. With the leader in its thread every job due during the block is promoted
during the block; with ``isolate=False`` (the control: the old design) none is. Counts are
asserted; lateness figures printed. A third run blocks with CPU-bound Python, which holds
the GIL: the thread runs only at switch intervals, slower but still during the block. Each
run checks that the loop monitor named the blocking job in a WARNING and recorded the lag
in ``awa.runtime.event_loop.lag``, read back through the SDK's in-memory reader.

Also here: the leader runs on the maintenance thread (user branches and event sinks with
it, a webhook included); shutdown stops the thread and releases the lock, so another
runtime leads right after; a failure in the thread ends the runtime with that failure; a
fake clock keeps the leader in the runtime's loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import anyio.to_thread
import asyncpg
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

import awa
from awa.config import MaintenanceConfig
from awa.events import CallableSink, Event, EventKind, Sink, WebhookSink
from awa.maintenance import HYGIENE, Branch, BranchContext, BranchResult, MaintenanceLeader
from awa.maintenance.leader_thread import LeaderThread, isolated
from awa.maintenance.precise_loop import PRECISE_SELECTOR, precise_loop_factory
from awa.store.leadership import LeaderConnection
from awa.telemetry import EVENT_LOOP_LAG, Instruments
from support.chaos import emit, fast_maintenance, leader_lock_holders, percentile, wait_for

BLOCK = 3.0
JOBS = 50
EARLIEST, LATEST = 0.5, 3.0  # seconds after its insert a job falls due
#: A job due this long before the block ended must have been promoted before it ended. The
#: CPU-bound block leaves the maintenance thread the GIL only at switch intervals (ADR 013:
#: ~50 ms per promotion), so it gets more slack.
MARGIN = {"sleep": 0.25, "spin": 0.75}

PROMOTIONS = """
CREATE TABLE public.promotions (
    id bigint PRIMARY KEY, run_at timestamptz NOT NULL, promoted_at timestamptz NOT NULL);
CREATE FUNCTION public.note_promotion() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.promotions VALUES (NEW.id, NEW.run_at, clock_timestamp())
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER note_promotion AFTER UPDATE OF state ON awa.jobs FOR EACH ROW
    WHEN (OLD.state = 'scheduled' AND NEW.state = 'available')
    EXECUTE FUNCTION public.note_promotion();
"""


async def db_offset(raw: asyncpg.Connection) -> float:
    """Database clock minus this process's ``time.time()``, from the tightest of a few
    round trips, to place app-side instants on the database's time line."""
    best: tuple[float, float] | None = None
    for _ in range(7):
        before = time.time()
        db: datetime = await raw.fetchval("SELECT clock_timestamp()")
        after = time.time()
        sample = (after - before, db.timestamp() - (before + after) / 2)
        best = sample if best is None or sample[0] < best[0] else best
    assert best is not None
    return best[1]


def insert_while_blocked(url: str, blocking: threading.Event) -> None:
    """Another thread, its own loop and pool: insert the jobs once the block began (the
    runtime's loop, and the test's, cannot run until it ends)."""
    if not blocking.wait(30):
        raise AssertionError("the blocking handler never started")

    async def main() -> None:
        async with awa.Client(url) as client:
            for i in range(JOBS):
                delay = EARLIEST + (LATEST - EARLIEST) * i / (JOBS - 1)
                await client.insert("tick", {"i": i}, delay=delay)

    asyncio.run(main())


@dataclass
class Blocked:
    lateness: list[float]  # every job: promoted_at - run_at, seconds
    due_in_block: int  # jobs due well before the block ended
    promoted_in_block: int  # … of which promoted before it ended
    block_job: int
    histogram: HistogramDataPoint | None


def spin(seconds: float) -> None:
    """CPU-bound pure Python: holds the GIL but for the interpreter's switch interval."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


BLOCKERS = {"sleep": time.sleep, "spin": spin}


async def run_blocked_workload(
    url: str, raw: asyncpg.Connection, *, isolate: bool, how: str
) -> Blocked:
    await raw.execute(PROMOTIONS)
    offset = await db_offset(raw)
    reader = InMemoryMetricReader()
    client = awa.Client(url, metrics=Instruments(MeterProvider(metric_readers=[reader])))
    blocking = threading.Event()
    window: list[float] = []  # block start, block end (time.time())
    ticked = 0
    all_ticked = anyio.Event()

    @client.handler("block")
    async def block(ctx: awa.JobContext) -> None:
        window.append(time.time())
        blocking.set()
        BLOCKERS[how](BLOCK)  # the fault under test: it blocks the loop
        window.append(time.time())

    @client.handler("tick")
    async def tick(ctx: awa.JobContext) -> None:
        nonlocal ticked
        ticked += 1
        if ticked == JOBS:
            all_ticked.set()

    async with client:
        runtime = awa.Runtime(
            client,
            awa.RuntimeConfig(queues={"default": 10}),
            maintenance=fast_maintenance(isolate=isolate),
        )
        async with runtime:
            leader = runtime.leader
            assert leader is not None
            assert isinstance(leader, LeaderThread) is isolate
            with anyio.fail_after(15):
                await leader.wait_until_leader()
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    partial(anyio.to_thread.run_sync, insert_while_blocked, url, blocking)
                )
                job = await client.insert("block", {})
            with anyio.fail_after(30):
                await all_ticked.wait()
    rows = await raw.fetch("SELECT run_at, promoted_at FROM public.promotions")
    assert len(rows) == JOBS  # the block job itself was never scheduled
    block_end = window[1] + offset
    due = [r for r in rows if r["run_at"].timestamp() < block_end - MARGIN[how]]
    promoted_in_block = [r for r in due if r["promoted_at"].timestamp() < block_end]
    data = reader.get_metrics_data()
    assert data is not None
    points = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == EVENT_LOOP_LAG
        for p in m.data.data_points
        if isinstance(p, HistogramDataPoint)
    ]
    return Blocked(
        lateness=[(r["promoted_at"] - r["run_at"]).total_seconds() for r in rows],
        due_in_block=len(due),
        promoted_in_block=len(promoted_in_block),
        block_job=job.id,
        histogram=points[0] if points else None,
    )


@pytest.mark.parametrize(
    ("isolate", "how"),
    [(True, "sleep"), (True, "spin"), (False, "sleep")],
    ids=["leader-thread-sleep", "leader-thread-cpu", "control-in-loop"],
)
async def test_a_handler_blocking_the_loop_does_not_delay_promotion(
    database_url: str,
    raw: asyncpg.Connection,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
    isolate: bool,
    how: str,
) -> None:
    """``sleep``: a sync call that releases the GIL; ``spin``: CPU-bound Python that holds
    it, so the maintenance thread runs only in the interpreter's switch intervals."""
    caplog.set_level(logging.WARNING, logger="awa.runtime")
    result = await run_blocked_workload(database_url, raw, isolate=isolate, how=how)
    late = result.lateness
    emit(
        request,
        f"promotion, {BLOCK:g}s blocking handler ({how}, "
        f"{'leader thread' if isolate else 'leader in the handlers loop'})",
        p50_ms=percentile(late, 0.5) * 1000,
        p99_ms=percentile(late, 0.99) * 1000,
        max_ms=max(late) * 1000,
        promoted_during_block=f"{result.promoted_in_block}/{result.due_in_block}",
    )
    # Most jobs fell due inside the block: the measurement means something.
    assert result.due_in_block >= JOBS // 3
    if isolate:
        # Promotion did not wait for the block: every job due in it was promoted in it.
        assert result.promoted_in_block == result.due_in_block
    else:
        # The old design, for contrast: the frozen loop froze promotion with it.
        assert result.promoted_in_block == 0
    # The loop monitor saw the block, named the job, and recorded the lag.
    named = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING
        and f"job {result.block_job} (kind 'block')" in r.getMessage()
    ]
    assert len(named) == 1, [r.getMessage() for r in caplog.records]
    assert result.histogram is not None and result.histogram.count >= 1
    assert result.histogram.max >= 0.2  # the observation that triggered the warning


class WhereAmI(Branch):
    """Records the thread its body runs on, and its loop's selector."""

    name = "where_am_i"
    lane = HYGIENE

    def __init__(self) -> None:
        super().__init__(interval=0.05)
        self.threads: set[int] = set()
        self.selectors: set[type] = set()

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        self.threads.add(threading.get_ident())
        self.selectors.add(type(getattr(asyncio.get_running_loop(), "_selector", None)))
        return BranchResult({})


@dataclass
class Receiver:
    url: str
    bodies: list[dict[str, Any]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook endpoint on loopback that records every body it is posted."""
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook", bodies)
    server.shutdown()
    server.server_close()
    thread.join(5)


async def test_branches_and_sinks_run_on_the_maintenance_thread(
    database_url: str, receiver: Receiver
) -> None:
    """User branches and event sinks run in the maintenance loop: an async sink, and a
    webhook whose HTTP client is created there, both deliver a job.failed event."""
    where = WhereAmI()
    sink_threads: set[int] = set()
    got: list[Event] = []

    async def collect(event: Event) -> None:
        sink_threads.add(threading.get_ident())
        got.append(event)

    client = awa.Client(database_url)

    @client.handler("doomed")
    async def doomed(ctx: awa.JobContext) -> None:
        raise RuntimeError("no")

    sinks: list[Sink] = [
        CallableSink("collect", collect, kinds=[EventKind.JOB_FAILED]),
        WebhookSink("hook", receiver.url, secret="s3cret", kinds=[EventKind.JOB_FAILED]),
    ]
    async with client:
        runtime = awa.Runtime(
            client,
            awa.RuntimeConfig(queues={"default": 2}),
            maintenance=fast_maintenance(intervals={"deliver_events": 0.1}),
            branches=[where],
            sinks=sinks,
        )
        async with runtime:
            leader = runtime.leader
            assert isinstance(leader, LeaderThread) and leader.thread is not None
            job = await client.insert("doomed", {}, max_attempts=1)
            await wait_for(lambda: got and receiver.bodies, 20, what="both deliveries")
            maintenance = leader.thread.ident
    assert maintenance is not None and maintenance != threading.get_ident()
    assert where.threads == {maintenance}
    # Its loop times waits in microseconds (ADR 044), where the platform uses epoll.
    precise = precise_loop_factory()
    assert precise is None or where.selectors == {PRECISE_SELECTOR}
    assert sink_threads == {maintenance}
    assert [e.data["job_id"] for e in got] == [job.id]
    assert [b["data"]["job_id"] for b in receiver.bodies] == [job.id]


async def test_shutdown_stops_the_thread_and_hands_leadership_over_at_once(
    database_url: str, raw: asyncpg.Connection, request: pytest.FixtureRequest
) -> None:
    async with awa.Client(database_url) as client:
        first = awa.Runtime(client, awa.RuntimeConfig(queues={}), maintenance=fast_maintenance())
        second = awa.Runtime(client, awa.RuntimeConfig(queues={}), maintenance=fast_maintenance())
        await first.start()
        leader = first.leader
        assert isinstance(leader, LeaderThread) and leader.thread is not None
        with anyio.fail_after(15):
            await leader.wait_until_leader()
        async with second:
            follower = second.leader
            assert isinstance(follower, LeaderThread)
            started = time.monotonic()
            await first.shutdown()
            stopped = time.monotonic() - started
            assert not leader.thread.is_alive()
            assert not leader.is_leader
            with anyio.fail_after(15):
                await follower.wait_until_leader()
            handed_over = time.monotonic() - started
            assert len(await leader_lock_holders(raw)) == 1
            assert follower.terms == 1 and leader.terms == 1
    emit(
        request,
        "leader thread shutdown",
        stopped_ms=stopped * 1000,
        next_leader_after_ms=handed_over * 1000,
    )


class Boom(BaseException):
    """Not an ``Exception``: the leader's own ``except Exception`` does not stop it."""


async def test_a_failure_in_the_maintenance_thread_ends_the_runtime_with_it(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = threading.Event()

    async def exploding_open(*args: Any, **kwargs: Any) -> Any:
        opened.set()
        raise Boom("in the maintenance thread")

    monkeypatch.setattr(LeaderConnection, "open", exploding_open)
    async with awa.Client(database_url) as client:
        runtime = awa.Runtime(client, awa.RuntimeConfig(queues={}), maintenance=fast_maintenance())
        with pytest.raises(BaseException) as raised:
            with anyio.fail_after(15):
                await runtime.run_until_stopped()
    assert opened.is_set()
    assert contains(raised.value, Boom), raised.value
    assert runtime.failure is not None and contains(runtime.failure, Boom)
    assert runtime.state == "stopped"


def contains(exc: BaseException, kind: type[BaseException]) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return any(contains(e, kind) for e in exc.exceptions)
    return isinstance(exc, kind)


async def test_only_the_real_clock_moves_the_leader_to_a_thread(database_url: str) -> None:
    def leader(clock: awa.Clock) -> MaintenanceLeader:
        return MaintenanceLeader(database_url, "x", [], MaintenanceConfig(), clock, Instruments())

    assert isinstance(isolated(leader(awa.SystemClock()), isolate=True), LeaderThread)
    assert isinstance(isolated(leader(awa.SystemClock()), isolate=False), MaintenanceLeader)
    assert isinstance(isolated(leader(awa.FakeClock()), isolate=True), MaintenanceLeader)
    client = awa.Client(database_url, clock=awa.FakeClock())
    async with client, awa.Runtime(client, awa.RuntimeConfig(queues={})) as runtime:
        assert isinstance(runtime.leader, MaintenanceLeader)
