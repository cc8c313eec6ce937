"""Chaos: ``pg_terminate_backend`` on the maintenance leader's connection and on random worker
connections (pooled, LISTEN, presence) while producers insert and two runtimes work.

Claim: no job is lost, none runs again after its completion was committed, both runtimes
survive every termination, and leadership is re-established after each loss of the leader
connection (one new term per termination of the leader's backend).

Short form: ~8 s of chaos, one termination every 0.2-0.6 s. ``AWA_CHAOS_LONG=1``: 60 s.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections import Counter

import anyio
import asyncpg
import pytest

from support.chaos import (
    Crew,
    ProducerTally,
    assert_nothing_lost_or_redone,
    audit,
    awa_backends,
    chaos_done,
    create_side_table,
    cron_fires,
    emit,
    leader_lock_holders,
    produce,
    scale,
    settle,
    verdict,
    wait_for,
)

CHAOS_SECONDS = scale(8.0, 60.0)
PARTS = ("leader", "pool", "presence", "listen")


async def test_terminated_backends_lose_no_job_and_leadership_returns(
    database_url: str, raw: asyncpg.Connection, request: pytest.FixtureRequest
) -> None:
    await create_side_table(raw)
    rng = random.Random()
    tally = ProducerTally()
    hits: Counter[str] = Counter()
    stop = anyio.Event()
    leader_back: list[float] = []
    async with Crew(database_url, 2, pool_size=6, cron=True) as crew:

        async def time_reelection(terms: int, since: float) -> None:
            def back() -> bool:
                return (crew.terms() > terms and bool(crew.leaders())) or bool(crew.crashed())

            with contextlib.suppress(AssertionError):  # a missing leader is asserted later
                await wait_for(back, 30, interval=0.005, what="a new leader term")
                leader_back.append(time.monotonic() - since)

        await settle(crew, crew.leaders, 15, what="a first leader")
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: produce(
                    crew.clients[0],
                    tally,
                    stop,
                    pause=0.005,
                    timeout=10.0,
                    rng=rng,
                    sleep=(0.0, 0.3),
                )
            )
            began = time.monotonic()
            round_robin = list(PARTS)
            terminated: set[int] = set()  # a backend that is still exiting is not hit twice
            while time.monotonic() - began < CHAOS_SECONDS and not crew.crashed():
                await anyio.sleep(rng.uniform(0.2, 0.6))
                part = round_robin.pop(0) if round_robin else rng.choice(PARTS)
                candidates = set((await awa_backends(raw)).get(part, [])) - terminated
                if not candidates:
                    continue
                pid = rng.choice(sorted(candidates))
                terms = crew.terms()
                if await raw.fetchval("SELECT pg_terminate_backend($1)", pid):
                    terminated.add(pid)
                    hits[part] += 1
                    if part == "leader":
                        tg.start_soon(time_reelection, terms, time.monotonic())
            stop.set()
        chaos_over = time.monotonic()
        verdict(crew, tally.untyped)

        await settle(crew, lambda: no_live_jobs(raw), 60, what="every job to finish")
        assert len(await settle(crew, crew.leaders, 30, what="a leader")) == 1
        holders = await settle(crew, lambda: leader_lock_holders(raw), 15, what="the lock")
        recovered = time.monotonic() - chaos_over
        assert len(holders) == 1
        # Each termination of the leader's backend ended a term; a new one followed each.
        assert crew.terms() >= 1 + hits["leader"]
        assert len(leader_back) == hits["leader"]

    result = await audit(raw, tally.acked)
    fires, doubled = await cron_fires(raw)
    emit(
        request,
        "pg_terminate_backend",
        inserted=result.jobs,
        acknowledged=len(tally.acked),
        completed=result.completed,
        lost=result.lost,
        duplicated_after_completion=result.after_completion,
        terminated=dict(hits),
        leader_terms=crew.terms(),
        leader_back_s_max=max(leader_back, default=0.0),
        reexecuted=result.reexecuted,
        insert_errors=tally.unavailable,
        cron_fires=fires,
        cron_instants_doubled=doubled,
        recover_s=recovered,
    )
    assert tally.hangs == 0
    assert tally.untyped == []
    assert_nothing_lost_or_redone(result, result.jobs)
    assert result.jobs >= len(tally.acked) > 0
    # Failovers never enqueue one cron instant twice (and the schedule did fire meanwhile).
    assert doubled == 0
    assert fires >= 1
    # Not vacuous: every part was hit at least once.
    assert set(hits) == set(PARTS), hits


async def no_live_jobs(raw: asyncpg.Connection) -> bool:
    return await chaos_done(raw) == 0
