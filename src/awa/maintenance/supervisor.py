"""How a leader arranges its lanes: the lane modes, and routing due times to topics.

Kept apart from the election (``leader``) because it is policy, not protocol:

- **Modes** (ADR 003, ADR 010): ``single`` runs every branch in one lane of capacity 1;
  ``split`` runs an SLO lane and a hygiene lane, each with its own pool and capacity;
  ``auto`` starts single and splits for good at the first overrun episode of an SLO branch
  (the reason is recorded, so an operator sees why the leader switched).
- **Due-time routing**: the ``awa_due`` channel carries a job's due epoch (topic ``DUE``),
  ``cron`` (topic ``CRON_CHANGED``) or ``work`` (topic ``WORK``: a runtime claimed jobs, so
  branches stretched by an idle database resume their cadence); every lane wakes the
  branches that listen to the topic. No branch is named here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from awa.config import MaintenanceConfig
from awa.maintenance.branch import CRON_CHANGED, DUE, HYGIENE, SLO, WORK, BranchContext
from awa.maintenance.lane import BranchStats, Lane
from awa.maintenance.overrun import Observation, Transition
from awa.telemetry import Instruments

__all__ = [
    "CRON_PAYLOAD",
    "SINGLE",
    "SPLIT",
    "WORK_PAYLOAD",
    "auto_split_reason",
    "build_lanes",
    "initial_mode",
    "route_due",
]

SINGLE = "single"
SPLIT = "split"
#: Payload on ``awa_due`` when cron schedules were (re)declared (see ``cron_upsert``).
CRON_PAYLOAD = "cron"
#: Payload on ``awa_due`` when a runtime claimed jobs (``awa.worker.work_announcer``).
WORK_PAYLOAD = "work"

Observer = Callable[[str, BranchStats, Observation], None]


def initial_mode(config: MaintenanceConfig) -> tuple[str, str | None]:
    """The mode a new term starts in, and why."""
    mode = SINGLE if config.mode in (SINGLE, "auto") else SPLIT
    reason: str | None = "configured" if config.mode != "auto" else "auto: start single"
    return mode, reason


def build_lanes(
    mode: str,
    stats: Mapping[str, BranchStats],
    config: MaintenanceConfig,
    slo_ctx: BranchContext,
    hygiene_ctx: BranchContext,
    metrics: Instruments,
    on_observation: Observer,
) -> dict[str, Lane]:
    """The lanes of ``mode`` over every branch's ``stats`` (keyed by lane name)."""
    jitter = config.startup_jitter
    if mode == SPLIT:
        slo = Lane(
            SLO,
            [s for s in stats.values() if s.branch.lane == SLO],
            config.slo_capacity,
            slo_ctx,
            metrics,
            jitter=jitter,
            reserve=True,
        )
        hygiene = Lane(
            HYGIENE,
            [s for s in stats.values() if s.branch.lane != SLO],
            config.hygiene_capacity,
            hygiene_ctx,
            metrics,
            jitter=jitter,
            reserve=True,
        )
        return {SLO: slo, HYGIENE: hygiene}
    single = Lane(
        SINGLE,
        list(stats.values()),
        1,
        slo_ctx,
        metrics,
        jitter=jitter,
        on_observation=on_observation,
    )
    return {SINGLE: single}


def auto_split_reason(
    config: MaintenanceConfig, stats: BranchStats, obs: Observation
) -> str | None:
    """``auto`` mode: why the lanes must split now (the first overrun episode of an SLO
    branch in single mode), or ``None`` to stay."""
    if config.mode != "auto" or stats.branch.lane != SLO:
        return None
    if obs.transition is not Transition.BECAME_DELAYED:
        return None
    return (
        f"auto: SLO branch {stats.branch.name} overran in single mode "
        f"(load {obs.ratio:.2f}x its {stats.branch.interval:g}s interval, "
        f"lateness {stats.last_lateness or 0:.3f}s, "
        f"duration {stats.last_duration or 0:.3f}s)"
    )


def route_due(payload: str, lanes: Mapping[str, Lane], now_epoch: float, db_offset: float) -> None:
    """Wake the branches listening to what ``payload`` announces: ``cron`` wakes
    ``CRON_CHANGED`` listeners at once; ``work`` returns stretched ``WORK`` listeners to
    their cadence; a due epoch (database clock) wakes ``DUE``
    listeners at that instant; anything else is ignored."""
    if payload == CRON_PAYLOAD:
        for lane in lanes.values():
            lane.wake(CRON_CHANGED, 0.0)
        return
    if payload == WORK_PAYLOAD:
        for lane in lanes.values():
            lane.resume_cadence(WORK)
        return
    try:
        seconds = float(payload) - now_epoch - db_offset
    except ValueError:
        return
    for lane in lanes.values():
        lane.wake(DUE, seconds)
