"""A reserved slot (ADR 030): a branch with ``reserved_slot`` runs on a slot of its own in a
split lane, so slow neighbours holding every shared slot do not delay it (issue 19: two slow
hygiene bodies could make a cron ``skip`` schedule miss a fire). Database-free: the bodies
only sleep. Counts, not times: how often the reserved branch ran while both shared slots
were held."""

from __future__ import annotations

from typing import cast

import anyio
import pytest

import awa
from awa.config import MaintenanceConfig
from awa.maintenance import HYGIENE, Branch, BranchContext, BranchResult
from awa.maintenance.builtin import BUILTIN_BRANCHES
from awa.maintenance.lane import BranchStats, Lane
from awa.store import Store
from awa.telemetry import instruments


class _Slow(Branch):
    lane = HYGIENE
    default_interval = 0.01

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name  # type: ignore[misc]  # two instances, two names

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        await anyio.sleep(0.4)
        return BranchResult()


class _Punctual(Branch):
    name = "punctual"
    lane = HYGIENE
    default_interval = 0.05
    reserved_slot = True

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        self.runs += 1
        return BranchResult()


async def runs_while_hogged(reserve: bool) -> int:
    punctual = _Punctual()
    branches = [_Slow("slow_a"), _Slow("slow_b"), punctual]
    ctx = BranchContext(
        store=cast(Store, None),
        clock=awa.SystemClock(),
        config=MaintenanceConfig(startup_jitter=0),
    )
    stats = [BranchStats.for_branch(b) for b in branches]
    lane = Lane(HYGIENE, stats, 2, ctx, instruments(), reserve=reserve)
    async with anyio.create_task_group() as tg:
        await tg.start(lane.run)
        await anyio.sleep(1.2)
        tg.cancel_scope.cancel()
    return punctual.runs


@pytest.mark.parametrize("reserve", [True, False], ids=["reserved", "shared"])
async def test_a_reserved_branch_is_not_held_back_by_slow_neighbours(reserve: bool) -> None:
    runs = await runs_while_hogged(reserve)
    if reserve:
        assert runs >= 8, runs  # up to 24 at its 0.05 s interval
    else:
        assert runs <= 6, runs  # a slot only when a 0.4 s body ends: about 3


def test_cron_evaluation_has_the_reserved_slot() -> None:
    reserved = {b.name for b in BUILTIN_BRANCHES if b.reserved_slot}
    assert reserved == {"cron_evaluate"}
