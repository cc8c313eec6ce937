"""The registry of built-in branches, and building them for one process.

Why a plain tuple and no per-branch case: every branch builds itself from the shared
``BranchOptions`` (``Branch.from_options``), so this module only lists them in lane order and
checks that interval overrides name a branch that exists. A branch that returns ``None``
(``cron_sync`` without the application's cron table) is left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from awa.config import MaintenanceConfig
from awa.cron import CronTable
from awa.events import Sink
from awa.maintenance.branch import Branch
from awa.maintenance.branches.cleanup import Cleanup
from awa.maintenance.branches.cron_evaluate import CronEvaluate
from awa.maintenance.branches.cron_sync import CronSync
from awa.maintenance.branches.dead_letter import DeadLetterHold
from awa.maintenance.branches.deliver_events import DeliverEvents
from awa.maintenance.branches.priority_aging import PriorityAging
from awa.maintenance.branches.promote_scheduled import PromoteScheduled
from awa.maintenance.branches.queue_stats import QueueStats
from awa.maintenance.branches.refresh_admin_metadata import RefreshAdminMetadata
from awa.maintenance.branches.rescue_expired_callbacks import RescueExpiredCallbacks
from awa.maintenance.branches.rescue_expired_deadlines import RescueExpiredDeadlines
from awa.maintenance.branches.rescue_stale_heartbeats import RescueStaleHeartbeats
from awa.maintenance.branches.rotate import Rotate
from awa.maintenance.options import BranchOptions, CleanupHook
from awa.store.dlq import DeadLetterPolicy

__all__ = ["BUILTIN_BRANCHES", "build_branches", "default_branches"]

BUILTIN_BRANCHES: tuple[type[Branch], ...] = (
    PromoteScheduled,
    RescueStaleHeartbeats,
    RescueExpiredDeadlines,
    RescueExpiredCallbacks,
    Cleanup,
    QueueStats,
    PriorityAging,
    Rotate,
    RefreshAdminMetadata,
    CronSync,
    CronEvaluate,
    DeadLetterHold,
    DeliverEvents,
)


def build_branches(options: BranchOptions) -> list[Branch]:
    """Every built-in branch this process runs, built from ``options``."""
    unknown = set(options.config.intervals) - {b.name for b in BUILTIN_BRANCHES}
    if unknown:
        raise ValueError(f"intervals given for unknown branches: {sorted(unknown)}")
    built = (cls.from_options(options) for cls in BUILTIN_BRANCHES)
    return [branch for branch in built if branch is not None]


def default_branches(
    config: MaintenanceConfig,
    cleanup_hooks: list[CleanupHook] | None = None,
    *,
    cron: CronTable | None = None,
    dead_letters: Iterable[DeadLetterPolicy] | None = None,
    sinks: Sequence[Sink] = (),
    instance_id: str = "",
) -> list[Branch]:
    """``build_branches`` with the options spelt out (the signature callers already use)."""
    return build_branches(
        BranchOptions(
            config=config,
            cleanup_hooks=tuple(cleanup_hooks or ()),
            cron=cron,
            dead_letters=dead_letters,
            sinks=sinks,
            instance_id=instance_id,
        )
    )
