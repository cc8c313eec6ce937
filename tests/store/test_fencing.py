"""Leadership terms and fencing (ADR 012), on a real PostgreSQL, through a fault proxy where
the network must misbehave.

A leader's stores are fenced by its term: each transaction first share-locks the term row
while the term is still current. So a deposed leader's late write (branch bodies, health
rows, the leader row, rotate) changes nothing and raises ``LeadershipLost``; the next term
cannot begin while a write of the previous one is in flight; the leader and ``tick()`` treat
the refusal as "stop leading". Releasing the lock and closing the pools are bounded, so a
deposed leader whose every connection is blackholed still stops within seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
import asyncpg
import pytest

import awa
from awa.clock import SystemClock
from awa.config import MaintenanceConfig
from awa.errors import LeadershipLost
from awa.maintenance import SLO, Branch, BranchContext, BranchResult, MaintenanceLeader
from awa.maintenance.branches.cleanup import Cleanup
from awa.maintenance.branches.promote_scheduled import PromoteScheduled
from awa.maintenance.branches.rotate import Rotate
from awa.maintenance.tick import tick
from awa.store import Store
from awa.store.leadership import LEADER_LOCK_KEY, LeaderConnection
from awa.store.maintenance import HealthRow
from awa.telemetry import instruments
from support.chaos import wait_for
from support.fault_proxy import FaultProxy

T = TypeVar("T")

PROBE_TABLE = "CREATE TABLE public.fence_probe (instance text NOT NULL, term bigint NOT NULL)"


class Probe(Branch):
    """Writes one row per run, in its store's transaction (so fenced like any branch)."""

    name = "probe"
    lane = SLO
    default_interval = 0.05

    def __init__(self, instance: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.instance = instance

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        async with ctx.store.db.acquire() as c:
            await c.execute(
                "INSERT INTO public.fence_probe (instance, term) VALUES ($1, $2)",
                self.instance,
                ctx.store.term or 0,
            )
        return BranchResult({"probed": 1})


def config(**overrides: Any) -> MaintenanceConfig:
    options: dict[str, Any] = {
        "startup_jitter": 0,
        "election_interval": 0.1,
        "leader_check_interval": 0.2,
        "health_interval": 0.2,
    }
    options.update(overrides)
    return MaintenanceConfig(**options)


def leader(url: str, instance: str, cfg: MaintenanceConfig) -> MaintenanceLeader:
    return MaintenanceLeader(url, instance, [Probe(instance)], cfg, SystemClock(), instruments())


async def new_term(url: str, holder: str) -> tuple[LeaderConnection, int]:
    """Win the leader lock and begin a term, as a leader does."""
    conn = await LeaderConnection.open(url)
    assert await conn.try_acquire()
    term = await conn.begin_term(holder, wait=5.0)
    assert term is not None
    return conn, term


async def lock_holder(raw: asyncpg.Connection) -> int | None:
    pid = await raw.fetchval(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
        " AND ((classid::bigint << 32) | objid::bigint) = $1"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        LEADER_LOCK_KEY,
    )
    return None if pid is None else int(pid)


@pytest.fixture
async def deposed(database_url: str) -> AsyncIterator[tuple[Store, int]]:
    """Leader A's store, fenced by A's term, after B began a newer term (A's lock lost)."""
    a_conn, a_term = await new_term(database_url, "A")
    store = await Store.open(database_url, max_size=2, term=a_term)
    await store.leadership.record_leader("A", "split", None)
    await a_conn.close()  # A's session ends: its lock goes with it
    b_conn, b_term = await new_term(database_url, "B")
    assert b_term == a_term + 1
    b_store = await Store.open(database_url, max_size=1, term=b_term)
    await b_store.leadership.record_leader("B", "split", None)
    try:
        yield store, a_term
    finally:
        await b_store.close()
        await b_conn.close()
        await store.close()


# --------------------------------------------------------------------- late writes


async def test_late_writes_of_a_deposed_leader_change_nothing(
    deposed: tuple[Store, int], raw: asyncpg.Connection, database_url: str
) -> None:
    store, a_term = deposed
    # Work for every write below: a due job, a ring ready to rotate with an expired slot.
    plain = await Store.open(database_url, max_size=1)
    try:
        for _ in range(3):
            await plain.jobs.insert_job(awa.InsertParams("k"))
        done = await plain.jobs.claim_batch("default", ["k"], 3, "someone")
        await plain.jobs.complete_batch(
            [j.id for j in done], [j.run_lease for j in done], [None] * 3
        )
    finally:
        await plain.close()
    await raw.execute("UPDATE awa.ring_state SET rotated_at = now() - interval '30 days'")
    await raw.execute("UPDATE awa.jobs_done SET slot = 1, finalized_at = now() - interval '1 day'")
    ring = await raw.fetchrow("SELECT * FROM awa.ring_state")
    scheduled = await raw.fetchval(
        "INSERT INTO awa.jobs (kind, queue, state, priority, original_priority, max_attempts,"
        " run_at, created_at) VALUES ('k', 'default', 'scheduled', 2, 2, 3,"
        " now() - interval '1 s', now()) RETURNING id"
    )
    health = HealthRow("probe", SLO, 1.0, None, None, None, None, 1, 0, 0, False, 1, None)
    short = {"completed": 1.0, "failed": 1.0, "cancelled": 1.0}
    ctx = BranchContext(store, SystemClock(), config(retention=short))
    history = await raw.fetchval("SELECT count(*) FROM awa.jobs_done WHERE slot = 1")
    assert history >= 3
    writes: dict[str, Callable[[], Awaitable[object]]] = {
        "promote_due": lambda: store.maintenance.promote_due(10),
        "write_health": lambda: store.maintenance.write_health([health], "A"),
        "record_leader": lambda: store.leadership.record_leader("A", "split", None),
        "rotate": lambda: Rotate().run_once(ctx),
        "truncate_slot": lambda: store.maintenance.truncate_slot(1),
        "cleanup (a sibling store)": lambda: Cleanup().run_once(ctx),
        "callbacks prune": lambda: store.callbacks.prune_callbacks(0.0, 10),
    }
    for name, write in writes.items():
        with pytest.raises(LeadershipLost) as caught:
            await write()
        assert caught.value.term == a_term, name
    assert await raw.fetchval("SELECT state FROM awa.jobs WHERE id = $1", scheduled) == "scheduled"
    assert await raw.fetchval("SELECT count(*) FROM awa.maintenance_health") == 0
    recorded = await raw.fetchrow("SELECT instance_id, term FROM awa.maintenance_leader")
    assert recorded is not None
    assert (recorded["instance_id"], recorded["term"]) == ("B", a_term + 1)
    assert await raw.fetchrow("SELECT * FROM awa.ring_state") == ring
    assert await raw.fetchval("SELECT count(*) FROM awa.jobs_done WHERE slot = 1") == history


async def test_the_current_term_writes_and_is_recorded(
    database_url: str, raw: asyncpg.Connection
) -> None:
    conn, term = await new_term(database_url, "A")
    store = await Store.open(database_url, max_size=1, term=term)
    try:
        await store.leadership.record_leader("A", "split", None)
        current = await store.leadership.current_term()
        assert (current["term"], current["holder"]) == (term, "A")
        leader_row = await store.leadership.get_leader()
        assert leader_row is not None and leader_row["term"] == term
        assert await store.maintenance.promote_due(10) == []
    finally:
        await store.close()
        await conn.close()


async def test_a_term_bump_waits_for_the_fenced_transaction_in_flight(
    database_url: str, raw: asyncpg.Connection
) -> None:
    """A's transaction that began before B's term commits, and B's term begins after it,
    never the other way round; A's next transaction is refused."""
    await raw.execute(PROBE_TABLE)
    a_conn, a_term = await new_term(database_url, "A")
    store = await Store.open(database_url, max_size=2, term=a_term)
    await a_conn.close()
    b_conn = await LeaderConnection.open(database_url)
    inside, finish = anyio.Event(), anyio.Event()
    b_term: list[int | None] = []

    async def a_writes() -> None:
        async with store.db.acquire() as c:
            await c.execute("INSERT INTO public.fence_probe VALUES ('A', $1)", a_term)
            inside.set()
            await finish.wait()
            await c.execute("INSERT INTO public.fence_probe VALUES ('A', $1)", a_term)

    async def b_begins() -> None:
        b_term.append(await b_conn.begin_term("B", wait=10.0))

    try:
        assert await b_conn.try_acquire()
        async with anyio.create_task_group() as tg:
            tg.start_soon(a_writes)
            await inside.wait()
            tg.start_soon(b_begins)
            await wait_for(lambda: blocked_on_term(raw))
            assert b_term == []  # B waits for A's transaction
            finish.set()
        assert b_term == [a_term + 1]
        assert await raw.fetchval("SELECT count(*) FROM public.fence_probe") == 2
        with pytest.raises(LeadershipLost):
            async with store.db.acquire() as c:
                await c.execute("INSERT INTO public.fence_probe VALUES ('A', $1)", a_term)
        assert await raw.fetchval("SELECT count(*) FROM public.fence_probe") == 2
    finally:
        await store.close()
        await b_conn.close()


async def test_a_fence_queued_behind_a_term_bump_sees_the_new_term(
    database_url: str, raw: asyncpg.Connection
) -> None:
    """The other interleaving: A's transaction starts while B's bump is uncommitted. It
    waits for the bump, then finds the newer term, and writes nothing."""
    await raw.execute(PROBE_TABLE)
    a_conn, a_term = await new_term(database_url, "A")
    store = await Store.open(database_url, max_size=1, term=a_term)
    await a_conn.close()

    async def a_writes() -> None:
        async with store.db.acquire() as c:
            await c.execute("INSERT INTO public.fence_probe VALUES ('A', $1)", a_term)

    try:
        refused = await refused_behind_a_bump(raw, a_writes)
        assert [exc.term for exc in refused] == [a_term]
        assert await raw.fetchval("SELECT count(*) FROM public.fence_probe") == 0
    finally:
        await store.close()


async def test_a_promotion_queued_behind_a_term_bump_promotes_nothing(
    database_url: str, raw: asyncpg.Connection
) -> None:
    """``promote_due`` fences itself inside its one statement (ADR 044): started while B's
    bump is uncommitted, it waits for the bump, finds the newer term, and neither promotes
    the due job nor keeps it locked; the caller gets ``LeadershipLost``."""
    a_conn, a_term = await new_term(database_url, "A")
    store = await Store.open(database_url, max_size=1, term=a_term)
    await a_conn.close()
    due = await raw.fetchval(
        "INSERT INTO awa.jobs (kind, queue, state, priority, original_priority, max_attempts,"
        " run_at, created_at) VALUES ('k', 'default', 'scheduled', 2, 2, 3,"
        " now() - interval '1 s', now()) RETURNING id"
    )

    async def no_job_lock_held() -> None:
        """While A waits for the fence it holds no job lock: the fence comes first."""
        other = await asyncpg.connect(database_url)
        try:
            locked = "SELECT id FROM awa.jobs WHERE id = $1 FOR UPDATE NOWAIT"
            async with other.transaction():
                assert await other.fetchval(locked, due) == due
        finally:
            await other.close()

    try:
        refused = await refused_behind_a_bump(
            raw, lambda: store.maintenance.promote_due(10), no_job_lock_held
        )
        assert [exc.term for exc in refused] == [a_term]
        assert await raw.fetchval("SELECT state FROM awa.jobs WHERE id = $1", due) == "scheduled"
        # The current term's promotion (unfenced here) finds the job unlocked and due.
        plain = await Store.open(database_url, max_size=1)
        try:
            assert await plain.maintenance.promote_due(10) == ["default"]
        finally:
            await plain.close()
    finally:
        await store.close()


async def refused_behind_a_bump(
    raw: asyncpg.Connection,
    write: Callable[[], Awaitable[object]],
    while_waiting: Callable[[], Awaitable[None]] | None = None,
) -> list[LeadershipLost]:
    """Start ``write`` while B's term bump (on ``raw``) is uncommitted; once it waits for
    the fence, run ``while_waiting``, then commit the bump. The refusals it met."""
    refused: list[LeadershipLost] = []

    async def attempt() -> None:
        try:
            await write()
        except LeadershipLost as exc:
            refused.append(exc)

    bump = raw.transaction()
    await bump.start()
    await raw.execute("UPDATE awa.leader_term SET term = term + 1, holder = 'B'")
    async with anyio.create_task_group() as tg:
        tg.start_soon(attempt)
        await wait_for(lambda: fence_waits(raw))
        assert refused == []
        if while_waiting is not None:
            await while_waiting()
        await bump.commit()
    return refused


async def fence_waits(raw: asyncpg.Connection) -> bool:
    """Whether a fence waits on a lock. ``raw`` may be inside a transaction, where
    pg_stat_activity is a snapshot taken at its first read: clear it, or a wait that began
    after that read is never seen."""
    await raw.execute("SELECT pg_stat_clear_snapshot()")
    return bool(
        await raw.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database()"
            " AND query LIKE '%FOR SHARE%')"
        )
    )


async def test_a_new_term_gives_up_when_older_transactions_outlive_its_wait(
    database_url: str, raw: asyncpg.Connection
) -> None:
    a_conn, a_term = await new_term(database_url, "A")
    store = await Store.open(database_url, max_size=1, term=a_term)
    await a_conn.close()
    b_conn = await LeaderConnection.open(database_url)
    try:
        assert await b_conn.try_acquire()
        async with store.db.acquire():
            assert await b_conn.begin_term("B", wait=0.2) is None
        assert b_conn.alive  # a refusal, not a dead connection
        assert await b_conn.begin_term("B", wait=5.0) == a_term + 1
    finally:
        await store.close()
        await b_conn.close()


async def blocked_on_term(raw: asyncpg.Connection) -> bool:
    return bool(
        await raw.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database()"
            " AND query LIKE '%UPDATE awa.leader_term%')"
        )
    )


# ------------------------------------------------------------------------ tick()


class BumpTerm(Branch):
    """Stands for another process taking over mid-tick: begins a newer term directly."""

    name = "bump_term"
    lane = SLO

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute("UPDATE awa.leader_term SET term = term + 1, holder = 'other'")
        finally:
            await conn.close()
        return BranchResult({"bumped": 1})


async def test_tick_leads_in_a_term_of_its_own(database_url: str, raw: asyncpg.Connection) -> None:
    await raw.execute(PROBE_TABLE)
    before = await raw.fetchval("SELECT term FROM awa.leader_term")
    report = await tick(
        database_url, "ticker", [Probe("ticker")], config(), SystemClock(), instruments()
    )
    assert report.leader and report.errors == 0
    term = await raw.fetchval("SELECT term FROM awa.leader_term")
    assert term == before + 1
    assert await raw.fetchval("SELECT term FROM public.fence_probe") == term
    assert await raw.fetchval("SELECT term FROM awa.maintenance_leader") == term
    assert await lock_holder(raw) is None


async def test_tick_deposed_midway_writes_nothing_more_and_raises(
    database_url: str, raw: asyncpg.Connection
) -> None:
    await raw.execute(PROBE_TABLE)
    branches = [BumpTerm(database_url), Probe("ticker")]
    with pytest.raises(LeadershipLost):
        await tick(database_url, "ticker", branches, config(), SystemClock(), instruments())
    assert await raw.fetchval("SELECT count(*) FROM public.fence_probe") == 0
    assert await raw.fetchval("SELECT count(*) FROM awa.maintenance_health") == 0
    assert await lock_holder(raw) is None  # the lock was given back


# --------------------------------------------------------------- bounded release


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[FaultProxy]:
    started = await FaultProxy.start(database_url)
    try:
        yield started
    finally:
        await started.close()


@pytest.mark.parametrize("fault", ["blackhole", "sever_server_side"])
async def test_release_on_a_dead_connection_returns_within_the_bound(
    database_url: str, proxy: FaultProxy, raw: asyncpg.Connection, fault: str
) -> None:
    conn = await LeaderConnection.open(proxy.url(database_url))
    assert await conn.try_acquire()
    getattr(proxy, fault)()
    started = time.monotonic()
    await conn.release()
    await conn.close()
    elapsed = time.monotonic() - started
    print(f"release+close on a {fault} connection: {elapsed:.2f}s")
    assert elapsed < 3.0
    assert not conn.alive


async def test_a_blackholed_pool_closes_within_the_bound(
    database_url: str, proxy: FaultProxy
) -> None:
    store = await Store.open(proxy.url(database_url), min_size=2, max_size=2, term=None)
    await store.maintenance.promote_due(1)
    proxy.blackhole()
    started = time.monotonic()
    await store.close()
    elapsed = time.monotonic() - started
    print(f"close of a blackholed pool: {elapsed:.2f}s")
    assert elapsed < 3.0


# -------------------------------------------------------------- the leader itself


async def test_a_partitioned_leader_is_deposed_and_its_late_writes_change_nothing(
    database_url: str, proxy: FaultProxy, raw: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """A's leader session ends on the server while A's client never hears of it (its pools
    still work): B takes over, A's next write is refused, and A stops leading."""
    caplog.set_level(logging.WARNING, logger="awa.maintenance")
    await raw.execute(PROBE_TABLE)
    # A's watchdog checks rarely: only the fence can tell A it was deposed.
    a = leader(proxy.url(database_url), "A", config(leader_check_interval=60.0))
    b = leader(database_url, "B", config())
    async with anyio.create_task_group() as tg:
        await tg.start(a.run)
        with anyio.fail_after(10):
            await a.wait_until_leader()
        a_term = a.term
        await wait_for(lambda: raw.fetchval("SELECT count(*) FROM public.fence_probe"))
        await tg.start(b.run)
        pid = await lock_holder(raw)
        proxy.sever_server_side(lambda c: c.backend_pid == pid)
        with anyio.fail_after(10):
            await b.wait_until_leader()
        assert a_term is not None and b.term == a_term + 1
        # Every write of A that will ever commit has: B's term waited for them.
        a_rows = await raw.fetchval("SELECT count(*) FROM public.fence_probe WHERE instance = 'A'")
        await wait_for(lambda: not a.is_leader, timeout=5.0)
        await anyio.sleep(0.5)  # A campaigns again, as a follower now
        assert not a.is_leader and b.is_leader
        assert (
            await raw.fetchval("SELECT count(*) FROM public.fence_probe WHERE instance = 'A'")
            == a_rows
        )
        assert await raw.fetchval(
            "SELECT count(*) FROM public.fence_probe WHERE instance = 'B' AND term = $1", b.term
        )
        assert a.stats["probe"].errors == 0  # the refusal is not a branch failure
        tg.cancel_scope.cancel()
    assert any("deposed" in r.getMessage() for r in caplog.records)
    recorded = await raw.fetchrow("SELECT instance_id, term FROM awa.maintenance_leader")
    assert recorded is not None and a_term is not None
    assert (recorded["instance_id"], recorded["term"]) == ("B", a_term + 1)


async def test_a_leader_whose_every_connection_is_blackholed_shuts_down_within_5s(
    database_url: str, proxy: FaultProxy, raw: asyncpg.Connection
) -> None:
    await raw.execute(PROBE_TABLE)
    a = leader(proxy.url(database_url), "A", config(leader_check_interval=60.0))
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            await tg.start(a.run)
            with anyio.fail_after(10):
                await a.wait_until_leader()
            await wait_for(lambda: raw.fetchval("SELECT count(*) FROM public.fence_probe"))
            proxy.blackhole()
            await anyio.sleep(0.3)  # branch bodies now hang on the wire
            started = time.monotonic()
            scope.cancel()
    elapsed = time.monotonic() - started
    print(f"shutdown of a fully blackholed leader: {elapsed:.2f}s")
    assert elapsed < 5.0
    assert not a.is_leader


async def test_a_blackholed_leader_is_replaced_and_a_due_job_promoted_within_15s(
    database_url: str, proxy: FaultProxy, raw: asyncpg.Connection
) -> None:
    """Default intervals. A's every connection goes silent both ways (the proxy's kernel
    still answers TCP, as middleboxes do): the server ends A's idle leader session after
    its idle limit, B takes over and promotes; A steps down on its own watchdog."""
    await raw.execute(PROBE_TABLE)
    defaults = MaintenanceConfig(startup_jitter=0)

    def with_promotion(url: str, name: str) -> MaintenanceLeader:
        branches = [Probe(name, interval=0.5), PromoteScheduled()]
        return MaintenanceLeader(url, name, branches, defaults, SystemClock(), instruments())

    a = with_promotion(proxy.url(database_url), "A")
    b = with_promotion(database_url, "B")
    async with anyio.create_task_group() as tg:
        await tg.start(a.run)
        with anyio.fail_after(10):
            await a.wait_until_leader()
        await tg.start(b.run)
        await wait_for(lambda: raw.fetchval("SELECT count(*) FROM public.fence_probe"))
        proxy.blackhole()
        blackholed = time.monotonic()
        job = await raw.fetchval(
            "INSERT INTO awa.jobs (kind, queue, state, priority, original_priority,"
            " max_attempts, run_at, created_at) VALUES ('k', 'default', 'scheduled', 2, 2, 3,"
            " now() + interval '2 s', now()) RETURNING id"
        )

        async def promoted() -> bool:
            state = await raw.fetchval("SELECT state FROM awa.jobs WHERE id = $1", job)
            return bool(state == "available")

        await wait_for(promoted, timeout=20.0)
        elapsed = time.monotonic() - blackholed
        print(f"blackholed leader replaced, due job promoted {elapsed:.1f}s after the fault")
        assert b.is_leader and not a.is_leader
        assert elapsed < 15.0
        assert b.term == await raw.fetchval("SELECT term FROM awa.leader_term")
        count_a = "SELECT count(*) FROM public.fence_probe WHERE instance = 'A'"
        a_rows = await raw.fetchval(count_a)
        proxy.resume()  # the partition heals: nothing A held back may land now
        await anyio.sleep(1.0)
        assert await raw.fetchval(count_a) == a_rows
        tg.cancel_scope.cancel()
