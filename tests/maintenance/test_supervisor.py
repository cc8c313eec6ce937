"""The lane supervisor (``awa.maintenance.supervisor``): lane modes, the auto split, and
routing ``awa_due`` payloads to wake-up topics.

Database-free: lanes are built but never run, and waking a branch only touches the lane's
bookkeeping. The auto split under a real starved SLO branch is ``test_leader.py``'s.
"""

from __future__ import annotations

from typing import cast

import pytest

import awa
from awa.config import MaintenanceConfig
from awa.maintenance import DUE, HYGIENE, SLO, Branch, BranchContext
from awa.maintenance.lane import BranchStats, Lane
from awa.maintenance.overrun import BranchHealth, Observation, Transition
from awa.maintenance.supervisor import (
    CRON_PAYLOAD,
    SINGLE,
    SPLIT,
    auto_split_reason,
    build_lanes,
    initial_mode,
    route_due,
)
from awa.store import Store
from awa.telemetry import instruments


class _Quiet(Branch):
    name = "quiet"


class _Due(Branch):
    name = "due_listener"
    lane = SLO
    wakes_on = frozenset({DUE})


def _ctx(config: MaintenanceConfig | None = None) -> BranchContext:
    # The store is never reached: nothing here runs a branch body.
    return BranchContext(
        store=cast(Store, None),
        clock=awa.SystemClock(),
        config=config or MaintenanceConfig(),
    )


def _stats(*branches: Branch) -> dict[str, BranchStats]:
    return {b.name: BranchStats.for_branch(b) for b in branches}


def _lane(*branches: Branch) -> Lane:
    return Lane("test", list(_stats(*branches).values()), 1, _ctx(), instruments())


def _ignore(lane: str, stats: BranchStats, obs: Observation) -> None:
    return None


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        ("single", (SINGLE, "configured")),
        ("split", (SPLIT, "configured")),
        ("auto", (SINGLE, "auto: start single")),
    ],
)
def test_a_term_starts_in_the_configured_mode(
    configured: str, expected: tuple[str, str | None]
) -> None:
    assert initial_mode(MaintenanceConfig(mode=configured)) == expected


def test_split_mode_gives_slo_and_hygiene_branches_their_own_lanes() -> None:
    config = MaintenanceConfig(slo_capacity=3, hygiene_capacity=2)
    stats = _stats(_Due(), _Quiet())
    lanes = build_lanes(SPLIT, stats, config, _ctx(), _ctx(), instruments(), _ignore)
    assert {name: list(lane.stats) for name, lane in lanes.items()} == {
        SLO: ["due_listener"],
        HYGIENE: ["quiet"],
    }
    assert lanes[SLO].limiter.total_tokens == 3
    assert lanes[HYGIENE].limiter.total_tokens == 2
    assert lanes[SLO].on_observation is None


def test_single_mode_runs_every_branch_in_one_lane_of_capacity_one() -> None:
    stats = _stats(_Due(), _Quiet())
    lanes = build_lanes(SINGLE, stats, MaintenanceConfig(), _ctx(), _ctx(), instruments(), _ignore)
    assert list(lanes) == [SINGLE]
    assert list(lanes[SINGLE].stats) == ["due_listener", "quiet"]
    assert lanes[SINGLE].limiter.total_tokens == 1
    assert lanes[SINGLE].on_observation is _ignore


def _observed(transition: Transition | None) -> Observation:
    return Observation(2.5, BranchHealth.DELAYED, transition, 1, 0.0)


def test_only_an_slo_branch_falling_behind_in_auto_mode_splits_the_lanes() -> None:
    auto = MaintenanceConfig(mode="auto")
    slo, hygiene = BranchStats.for_branch(_Due()), BranchStats.for_branch(_Quiet())
    reason = auto_split_reason(auto, slo, _observed(Transition.BECAME_DELAYED))
    assert reason is not None and reason.startswith("auto: SLO branch due_listener overran")
    assert auto_split_reason(auto, hygiene, _observed(Transition.BECAME_DELAYED)) is None
    assert auto_split_reason(auto, slo, _observed(None)) is None
    assert (
        auto_split_reason(
            MaintenanceConfig(mode="single"), slo, _observed(Transition.BECAME_DELAYED)
        )
        is None
    )


def test_a_topic_wakes_its_listeners_and_no_one_else() -> None:
    lane = _lane(_Quiet(), _Due())
    route_due("0", {"test": lane}, now_epoch=0.0, db_offset=0.0)
    assert lane.stats["due_listener"].wake.is_set()
    assert lane.stats["due_listener"].requested is not None
    assert not lane.stats["quiet"].wake.is_set()
    route_due(CRON_PAYLOAD, {"test": lane}, now_epoch=0.0, db_offset=0.0)
    assert not lane.stats["quiet"].wake.is_set()


def test_an_unreadable_due_payload_wakes_nothing() -> None:
    lane = _lane(_Due())
    route_due("not a number", {"test": lane}, now_epoch=0.0, db_offset=0.0)
    assert not lane.stats["due_listener"].wake.is_set()
