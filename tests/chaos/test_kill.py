"""Chaos: worker processes killed with SIGKILL in the middle of executing jobs, again and
again, while the others keep working.

Claim: every job still completes; no handler ever starts after its job's completion was
committed (``chaos_executions.after_completion``); the jobs a dead worker held are re-run by
the survivors within seconds (presence-lock rescue, not the 30 s heartbeat backstop).

Short form: 3 kills over ~400 jobs. ``AWA_CHAOS_LONG=1``: 12 kills over ~2,500 jobs.
"""

from __future__ import annotations

import random
import time
from functools import partial
from pathlib import Path

import anyio
import asyncpg
import pytest

import awa
from support.chaos import (
    KIND,
    QUEUE,
    WorkerFleet,
    assert_nothing_lost_or_redone,
    audit,
    chaos_done,
    create_side_table,
    emit,
    percentile,
    scale,
    wait_for,
)

JOBS = scale(400, 2500)
KILLS = scale(3, 12)
WORKERS = 2
CONCURRENCY = 6


async def test_sigkilled_workers_lose_no_job_and_never_rerun_a_completed_one(
    database_url: str, raw: asyncpg.Connection, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    await create_side_table(raw)
    rng = random.Random()
    await insert_jobs(database_url, JOBS, rng)

    rescue_times: list[float] = []
    interrupted = 0
    started = time.monotonic()
    async with WorkerFleet(database_url, tmp_path) as fleet:
        for _ in range(WORKERS):
            await fleet.spawn(queues={QUEUE: CONCURRENCY})
        for _ in range(KILLS):
            victim = rng.choice(fleet.alive())
            held = await wait_for(
                partial(running_under, raw, victim.instance_id),
                30,
                what="the victim to hold running jobs",
            )
            assert victim.alive, victim.log_tail()
            await victim.kill9()
            killed_at = time.monotonic()
            interrupted += len(held)
            # The survivors take over: the dead worker's attempts leave it (rescued by the
            # leader, which may have been the victim, or by a starting worker's recovery).
            await wait_for(
                partial(still_held, raw, victim.instance_id, held),
                30,
                what="the killed worker's jobs to be rescued",
            )
            rescue_times.append(time.monotonic() - killed_at)
            await fleet.spawn(queues={QUEUE: CONCURRENCY})
            await anyio.sleep(rng.uniform(0.2, 0.8))
        last_kill = time.monotonic()
        await wait_for(lambda: no_live_jobs(raw), 90, what="every job to finish")
        drained = time.monotonic() - last_kill
        for worker in fleet.alive():
            assert worker.alive, worker.log_tail()

    result = await audit(raw)
    emit(
        request,
        "kill -9 workers",
        inserted=JOBS,
        completed=result.completed,
        lost=result.lost,
        duplicated_after_completion=result.after_completion,
        kills=KILLS,
        attempts_interrupted=interrupted,
        reexecuted=result.reexecuted,
        recover_s_max=max(rescue_times),
        recover_s_p50=percentile(rescue_times, 0.5),
        drain_after_last_kill_s=drained,
        total_s=time.monotonic() - started,
    )
    assert_nothing_lost_or_redone(result, JOBS)
    # Not vacuous: every kill interrupted running attempts, and those were run again.
    assert interrupted >= KILLS
    assert result.reexecuted >= 1
    assert result.executions > result.completed


async def insert_jobs(url: str, count: int, rng: random.Random) -> None:
    client = awa.Client(url)
    async with client:
        await client.insert_many(
            [
                client.params(KIND, {"n": i, "sleep": rng.uniform(0.05, 0.4)}, queue=QUEUE)
                for i in range(count)
            ]
        )


async def running_under(raw: asyncpg.Connection, instance_id: str | None) -> list[int]:
    rows = await raw.fetch(
        "SELECT id FROM awa.jobs WHERE state = 'running' AND claimed_by = $1", instance_id
    )
    return [int(r["id"]) for r in rows]


async def still_held(raw: asyncpg.Connection, instance_id: str | None, ids: list[int]) -> bool:
    count: int = await raw.fetchval(
        "SELECT count(*) FROM awa.jobs WHERE id = ANY($1::bigint[]) AND claimed_by = $2"
        " AND state = 'running'",
        ids,
        instance_id,
    )
    return count == 0


async def no_live_jobs(raw: asyncpg.Connection) -> bool:
    return await chaos_done(raw) == 0
