"""The health writer's idle stretch (ADR 041, issue 19): while every branch that can
stretch its interval has stretched it, the leader writes branch health every
``health_interval × HEALTH_IDLE_STRETCH`` and stores that interval (the console's STALE
threshold follows it); work announced by a claim brings it back to ``health_interval``.
"""

from __future__ import annotations

import asyncpg

import awa
from awa.config import MaintenanceConfig
from awa.maintenance import SLO, Branch, BranchContext, BranchResult
from awa.maintenance.lane import HEALTH_IDLE_STRETCH, BranchStats, health_cadence
from support.chaos import wait_for


class _Stretching(Branch):
    name = "stretching"
    lane = SLO
    default_interval = 1.0
    idle_stretch = 8.0

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        return BranchResult(idle=True)


class _Steady(Branch):
    name = "steady"
    lane = SLO
    default_interval = 1.0

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        return BranchResult()


ON = MaintenanceConfig(health_interval=5.0)
OFF = MaintenanceConfig(health_interval=5.0, idle_stretch=False)


def test_the_cadence_stretches_only_when_every_stretchable_branch_has() -> None:
    one, two = BranchStats.for_branch(_Stretching()), BranchStats.for_branch(_Stretching())
    steady = BranchStats.for_branch(_Steady())  # never stretches: does not hold it back
    assert health_cadence(ON, [one, two, steady]) == 5.0
    one.idle_streak = 3
    assert health_cadence(ON, [one, two, steady]) == 5.0
    two.idle_streak = 1
    assert health_cadence(ON, [one, two, steady]) == 5.0 * HEALTH_IDLE_STRETCH
    assert health_cadence(OFF, [one, two, steady]) == 5.0
    steady.failures = 1  # a failing branch: the operator wants fresh rows
    assert health_cadence(ON, [one, two, steady]) == 5.0
    steady.failures = 0
    assert health_cadence(ON, [steady]) == 5.0  # nothing to judge idleness by


def test_announced_work_restores_the_base_interval_once_even_if_idle_again() -> None:
    """A claimed job can finish before the woken branch runs: the branch is idle again
    at once, yet the next write must still show that work arrived."""
    one = BranchStats.for_branch(_Stretching())
    one.idle_streak = 2
    assert health_cadence(ON, [one]) == 5.0 * HEALTH_IDLE_STRETCH
    one.work_announced = True
    assert health_cadence(ON, [one]) == 5.0
    assert health_cadence(ON, [one]) == 5.0 * HEALTH_IDLE_STRETCH  # consumed by the write


async def test_an_idle_leader_writes_health_less_often_until_work_arrives(
    database_url: str, raw: asyncpg.Connection
) -> None:
    client = awa.Client(database_url)

    @client.handler("ping")
    async def ping(ctx: awa.JobContext) -> None:
        return None

    maintenance = MaintenanceConfig(startup_jitter=0, health_interval=0.5)
    stored = "SELECT health_interval_s FROM awa.maintenance_leader"
    async with client, awa.Runtime(client, maintenance=maintenance) as runtime:
        assert runtime.leader is not None
        await runtime.leader.wait_until_leader()
        stretched = 0.5 * HEALTH_IDLE_STRETCH
        await wait_for(
            lambda: _equals(raw, stored, stretched), 60, what="the stretched health interval"
        )
        job = await client.insert("ping")
        # The claim's announcement restores the rescue branch's cadence; the next health
        # write (at most the stretched interval away) stores the base interval again.
        await wait_for(lambda: _equals(raw, stored, 0.5), 30, what="the base interval")
        assert (await client.get_job(job.id)).state in (
            awa.JobState.COMPLETED,
            awa.JobState.RUNNING,
        )


async def _equals(raw: asyncpg.Connection, query: str, value: float) -> bool:
    return bool(await raw.fetchval(query) == value)
