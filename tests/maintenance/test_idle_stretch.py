"""Idle stretch (ADR 029, issue 19): a branch whose runs report ``idle`` runs less often,
doubling its interval up to ``interval × idle_stretch``; a run that is not idle, or work
announced on a topic it listens to (``WORK``: a runtime claimed jobs), restores it.

The first tests drive a lane without a database (the bodies touch no store); the last runs
a real leader, lets its rescue branch stretch to 16 s on an idle database, then kills a
worker process right after it claimed jobs: the claim's announcement brings the branch back
to its 1 s cadence, so the jobs are rescued within seconds, not at the stretched run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

import anyio
import asyncpg

import awa
from awa.config import MaintenanceConfig
from awa.maintenance import SLO, WORK, Branch, BranchContext, BranchResult
from awa.maintenance.lane import BranchStats, Lane
from awa.maintenance.supervisor import WORK_PAYLOAD, route_due
from awa.store import Store
from awa.telemetry import instruments
from support.chaos import wait_for

#: The victim: ``python -m support.hang_worker URL`` (a handler that never returns).
WORKER = [sys.executable, "-m", "support.hang_worker"]
TESTS = Path(__file__).resolve().parents[1]


class _Sometimes(Branch):
    """Idle until told otherwise."""

    name = "sometimes"
    lane = SLO
    default_interval = 1.0
    wakes_on = frozenset({WORK})
    idle_stretch = 8.0

    def __init__(self) -> None:
        super().__init__()
        self.idle = True

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        return BranchResult(idle=self.idle)


def _lane(branch: Branch, config: MaintenanceConfig | None = None) -> tuple[Lane, BranchStats]:
    ctx = BranchContext(
        store=cast(Store, None), clock=awa.SystemClock(), config=config or MaintenanceConfig()
    )
    stats = BranchStats.for_branch(branch)
    return Lane("test", [stats], 1, ctx, instruments()), stats


async def test_idle_runs_double_the_interval_up_to_the_stretch() -> None:
    branch = _Sometimes()
    lane, stats = _lane(branch)
    seen = []
    for _ in range(6):
        await lane.drive(branch.name)
        seen.append(stats.current_interval)
    assert seen == [2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert stats.health("test").interval_s == 8.0  # what the console shows is what is in force

    branch.idle = False
    await lane.drive(branch.name)
    assert stats.current_interval == 1.0
    assert stats.idle_streak == 0


async def test_announced_work_restores_only_stretched_listeners() -> None:
    branch = _Sometimes()
    lane, stats = _lane(branch)
    await lane.drive(branch.name)
    await lane.drive(branch.name)
    assert stats.current_interval == 4.0
    route_due(WORK_PAYLOAD, {"test": lane}, time.time(), 0.0)
    assert stats.idle_streak == 0
    assert stats.requested is not None and stats.wake.is_set()  # runs now

    stats.requested = None
    stats.wake = anyio.Event()
    lane.resume_cadence(WORK)  # not stretched: nothing to do, no extra run
    assert stats.requested is None and not stats.wake.is_set()


async def test_idle_stretch_can_be_turned_off() -> None:
    branch = _Sometimes()
    lane, stats = _lane(branch, MaintenanceConfig(idle_stretch=False))
    for _ in range(3):
        await lane.drive(branch.name)
    assert stats.current_interval == 1.0


async def test_an_idle_dispatcher_polls_less_and_still_wakes_at_once(database_url: str) -> None:
    client = awa.Client(database_url)
    ran = anyio.Event()

    @client.handler("ping")
    async def ping(ctx: awa.JobContext) -> None:
        ran.set()

    config = awa.RuntimeConfig(queues={"default": 1}, poll_interval=0.05)
    async with client, awa.Runtime(client, config, run_maintenance=False) as runtime:
        [dispatcher] = runtime.dispatchers
        # 0.05 + 0.1 + 0.2 + 0.4 + 0.8 s of polls that found nothing
        await wait_for(lambda: dispatcher._empty_polls >= 5, 10, what="idle polls")
        assert dispatcher._poll_timeout() >= 1.6
        started = time.monotonic()
        await client.insert("ping")
        with anyio.fail_after(5):
            await ran.wait()
        assert time.monotonic() - started < dispatcher._poll_timeout()  # woken, not polled
        await wait_for(lambda: dispatcher._empty_polls == 0, 5, what="the poll restored")


async def test_a_crash_right_after_claiming_on_an_idle_database_is_rescued_promptly(
    database_url: str, raw: asyncpg.Connection
) -> None:
    survivor = awa.Client(database_url)
    reran: list[int] = []

    @survivor.handler("hang")
    async def finish(ctx: awa.JobContext) -> str:
        reran.append(ctx.job.id)
        return "recovered"

    maintenance = MaintenanceConfig(startup_jitter=0, election_interval=0.2)
    async with survivor:
        runtime = awa.Runtime(
            survivor, awa.RuntimeConfig(queues={"other": 1}), maintenance=maintenance
        )
        async with runtime:
            leader = runtime.leader
            assert leader is not None
            await leader.wait_until_leader()
            rescue = leader.stats["rescue_stale_heartbeats"]
            # 1 + 2 + 4 + 8 s of idle runs, then 16 s apart
            await wait_for(lambda: rescue.current_interval >= 16.0, 40, what="the stretch")
            ids = {(await survivor.insert("hang", {"n": i})).id for i in range(3)}
            proc = await anyio.open_process(
                [*WORKER, database_url],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": str(TESTS)},
            )
            try:
                running = "SELECT count(*) = $1 FROM awa.jobs WHERE state = 'running'"
                await wait_for(lambda: raw.fetchval(running, len(ids)), 30, what="claims")
                claimed_at = time.monotonic()
                # The announcement does it, not the stretched run 16 s away.
                await wait_for(lambda: rescue.idle_streak == 0, 5, what="cadence restored")
                resumed_in = time.monotonic() - claimed_at
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = time.monotonic()
                await proc.wait()
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                await proc.aclose()
            runtime_b = awa.Runtime(
                survivor, awa.RuntimeConfig(queues={"default": 5}), run_maintenance=False
            )
            async with runtime_b:
                await wait_for(lambda: len(reran) == len(ids), 15, what="re-runs")
            rescued_in = time.monotonic() - killed_at
    print(
        f"\ncadence restored {resumed_in:.2f}s after the claim; re-run {rescued_in:.2f}s after kill"
    )
    assert sorted(reran) == sorted(ids)
    assert rescued_in < 8.0  # holder silence (2 s) + a 1 s rescue cadence, with slack
