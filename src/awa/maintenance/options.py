"""What the built-in branches are built from: one shared options object.

Why one object: the registry (``awa.maintenance.builtin``) builds every branch the same way,
``cls.from_options(options)``, so adding a branch that needs something new (sinks, policies,
the application's cron table) means adding a field here and a classmethod on that branch,
never a special case in the registry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from awa.config import MaintenanceConfig
from awa.cron import CronTable
from awa.events import Sink
from awa.store.dlq import DeadLetterPolicy

if TYPE_CHECKING:
    from awa.maintenance.branch import BranchContext

__all__ = ["BranchOptions", "CleanupHook"]

#: Called after each ``cleanup`` pass of the hygiene lane (``Runtime(cleanup_hooks=...)``).
CleanupHook = Callable[["BranchContext"], Awaitable[None]]


@dataclass(frozen=True)
class BranchOptions:
    """Everything a built-in branch may need at construction.

    ``cron`` and ``dead_letters`` are ``None`` in a process that does not know the
    application's declarations (pool-only maintenance): the branches that would act on them
    (``cron_sync``) are then left out rather than orphaning what they never saw.
    """

    config: MaintenanceConfig = field(default_factory=MaintenanceConfig)
    cleanup_hooks: Sequence[CleanupHook] = ()
    cron: CronTable | None = None
    dead_letters: Iterable[DeadLetterPolicy] | None = None
    sinks: Sequence[Sink] = ()
    instance_id: str = ""

    def interval(self, branch: str) -> float | None:
        """The configured interval override for ``branch`` (``None``: its default)."""
        return self.config.intervals.get(branch)

    @property
    def synced_by(self) -> str:
        """Who a declaration-syncing branch records as the writer."""
        return self.instance_id or "unknown"
