"""The built-in branches, constructed with the configured interval overrides.

``cron_sync`` is included only when the process knows the application's cron declarations
(``cron`` given): a pool-only maintenance process must not orphan schedules it never saw.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from awa.config import MaintenanceConfig
from awa.cron import CronTable
from awa.events import Sink
from awa.maintenance.branch import Branch
from awa.maintenance.cleanup import Cleanup, CleanupHook
from awa.maintenance.cron_evaluate import CronEvaluate
from awa.maintenance.cron_sync import CronSync
from awa.maintenance.dead_letter import DeadLetterHold
from awa.maintenance.deliver_events import DeliverEvents
from awa.maintenance.priority_aging import PriorityAging
from awa.maintenance.promote_scheduled import PromoteScheduled
from awa.maintenance.queue_stats import QueueStats
from awa.maintenance.refresh_admin_metadata import RefreshAdminMetadata
from awa.maintenance.rescue_expired_callbacks import RescueExpiredCallbacks
from awa.maintenance.rescue_expired_deadlines import RescueExpiredDeadlines
from awa.maintenance.rescue_stale_heartbeats import RescueStaleHeartbeats
from awa.maintenance.rotate import Rotate
from awa.store.dlq import DeadLetterPolicy

__all__ = ["BUILTIN_BRANCHES", "default_branches"]

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


def default_branches(
    config: MaintenanceConfig,
    cleanup_hooks: list[CleanupHook] | None = None,
    *,
    cron: CronTable | None = None,
    dead_letters: Iterable[DeadLetterPolicy] | None = None,
    sinks: Sequence[Sink] = (),
    instance_id: str = "",
) -> list[Branch]:
    unknown = set(config.intervals) - {b.name for b in BUILTIN_BRANCHES}
    if unknown:
        raise ValueError(f"intervals given for unknown branches: {sorted(unknown)}")
    branches: list[Branch] = []
    for cls in BUILTIN_BRANCHES:
        interval = config.intervals.get(cls.name)
        if cls is Cleanup:
            branches.append(Cleanup(hooks=cleanup_hooks, interval=interval))
        elif cls is DeliverEvents:
            # Always present, even without sinks: it also expires delivered events.
            branches.append(DeliverEvents(sinks, interval=interval))
        elif cls is DeadLetterHold:
            branches.append(
                DeadLetterHold(dead_letters, instance_id or "unknown", interval=interval)
            )
        elif cls is CronSync:
            if cron is not None:
                branches.append(CronSync(cron, instance_id or "unknown", interval=interval))
        else:
            branches.append(cls(interval=interval))
    return branches
