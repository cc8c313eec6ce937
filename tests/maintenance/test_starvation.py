"""The heart of split lanes: a slow hygiene branch must not starve ``promote_scheduled``.

One workload, run twice on two fresh databases: a user hygiene branch whose body takes 10×
its interval, and ~30 jobs scheduled over ~3 s. Promotion lateness per job (handler start
minus the job's ``run_at``) is measured in ``split`` mode and in ``single`` mode (one lane,
capacity 1: the classic one-loop design). Split must keep promotion on time relative to the
slow body; single must be visibly worse. Only ratios are asserted.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import anyio
import asyncpg
import pytest

import awa
from awa.config import MaintenanceConfig
from awa.maintenance import HYGIENE, Branch, BranchContext, BranchResult

SLOW_INTERVAL = 0.05
SLOW_BODY = 10 * SLOW_INTERVAL  # 0.5 s
JOBS = 30
SPREAD = 3.0  # seconds over which the jobs fall due


class Slow(Branch):
    name = "slow"
    lane = HYGIENE

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        await anyio.sleep(SLOW_BODY)
        return BranchResult({"slept": 1})


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]


@pytest.fixture
async def second_database_url(server_url: str, template_name: str) -> AsyncIterator[str]:
    """Another fresh migrated database, for the second run of the same workload."""
    name = f"awa_s_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
    finally:
        await admin.close()
    yield urlsplit(server_url)._replace(path=f"/{name}").geturl()
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def measure(url: str, mode: str) -> dict[str, Any]:
    """Run the workload in ``mode``; return per-job lateness and the slow branch's record."""
    client = awa.Client(url)
    lateness: list[float] = []
    done = anyio.Event()

    @client.handler("tick")
    async def tick(ctx: awa.JobContext) -> None:
        lateness.append((datetime.now(UTC) - ctx.job.run_at).total_seconds())
        if len(lateness) == JOBS:
            done.set()

    config = MaintenanceConfig(
        mode=mode, startup_jitter=0, election_interval=0.2, leader_check_interval=0.2
    )
    async with client:
        runtime = awa.Runtime(
            client,
            awa.RuntimeConfig(queues={"default": 10}),
            maintenance=config,
            branches=[Slow(interval=SLOW_INTERVAL)],
        )
        async with runtime:
            leader = runtime.leader
            assert leader is not None
            with anyio.fail_after(15):
                await leader.wait_until_leader()
            assert leader.mode == mode
            for i in range(JOBS):
                await client.insert("tick", {"i": i}, delay=0.3 + i * SPREAD / JOBS)
            with anyio.fail_after(30):
                await done.wait()
            slow = leader.stats["slow"]
            outcome = {
                "lateness": lateness,
                "episodes": slow.tracker.episodes,
                "slow_runs": slow.runs,
                "mode": leader.mode,
                "lanes": set(leader.lanes),
            }
    assert len(lateness) == JOBS
    return outcome


async def test_slow_hygiene_branch_starves_promotion_only_in_single_mode(
    database_url: str, second_database_url: str
) -> None:
    split = await measure(database_url, "split")
    single = await measure(second_database_url, "single")

    assert split["lanes"] == {"slo", "hygiene"}
    assert single["lanes"] == {"single"}
    split_p90 = p90(split["lateness"])
    single_p90 = p90(single["lateness"])
    print(
        f"\npromotion lateness p90: split {split_p90 * 1000:.1f} ms, "
        f"single {single_p90 * 1000:.1f} ms ({single_p90 / max(split_p90, 1e-9):.1f}x); "
        f"max split {max(split['lateness']) * 1000:.1f} ms, "
        f"max single {max(single['lateness']) * 1000:.1f} ms; "
        f"slow runs split {split['slow_runs']}, single {single['slow_runs']}"
    )
    # The slow branch really was slow, and was flagged as such, in both modes.
    assert split["episodes"] >= 1
    assert single["episodes"] >= 1
    # Split lanes: promotion stays on time relative to the slow body.
    assert split_p90 < 0.25 * SLOW_BODY
    # One lane: promotion waits behind the slow body.
    assert single_p90 >= 3 * split_p90


class Hog(Branch):
    """A hygiene body that holds its slot until the test lets go (a huge cleanup page)."""

    name = "hog"
    lane = HYGIENE

    def __init__(self) -> None:
        super().__init__(interval=0.05, timeout=120)
        self.holding = anyio.Event()
        self.release = anyio.Event()

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        self.holding.set()
        await self.release.wait()
        return BranchResult({})


class Quick(Branch):
    """A short hygiene body on a short interval (cron_evaluate's shape)."""

    name = "quick"
    lane = HYGIENE
    default_interval = 0.05

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0
        self.target = math.inf
        self.reached = anyio.Event()

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        self.runs += 1
        if self.runs >= self.target:
            self.reached.set()
        return BranchResult({})


@pytest.mark.parametrize("capacity", [1, 2])
async def test_one_hogging_hygiene_body_holds_back_its_siblings_only_at_capacity_one(
    database_url: str, capacity: int
) -> None:
    """ADR 010: with the default hygiene capacity (2) a body that holds its slot leaves
    the other for cron_evaluate and the rest; with capacity 1 everything waits for it.
    Counts only: the hog never lets go while we count."""
    hog, quick = Hog(), Quick()
    assert MaintenanceConfig().hygiene_capacity == 2  # the default this test defends
    config = MaintenanceConfig(
        startup_jitter=0,
        election_interval=0.2,
        leader_check_interval=0.2,
        hygiene_capacity=capacity,
    )
    async with awa.Client(database_url) as client:
        runtime = awa.Runtime(
            client, awa.RuntimeConfig(queues={}), maintenance=config, branches=[hog, quick]
        )
        async with runtime:
            with anyio.fail_after(15):
                await hog.holding.wait()
            before = quick.runs
            if capacity == 1:
                await anyio.sleep(1.0)  # ~20 intervals of quick
                assert quick.runs <= before + 1  # at most a body that had its slot already
            else:
                quick.target = before + 5
                with anyio.fail_after(15):
                    await quick.reached.wait()
            hog.release.set()
