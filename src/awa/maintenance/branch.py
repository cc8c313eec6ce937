"""The contract every maintenance branch implements.

A branch is one periodic, bounded, idempotent database task. It declares its ``name``,
``lane`` (``slo`` or ``hygiene``), ``interval`` and ``timeout``, and implements
``run_once(ctx) -> BranchResult``. The lane owns scheduling, capacity, timeouts, retries,
telemetry and overrun tracking, so a branch body is only its query logic. No branch imports
another (an import-linter contract, ADR 017).

A branch is built by the registry through ``from_options`` (override it when the branch
needs more than its interval), and says which *topics* wake it early (``wakes_on``): the
leader announces a topic (``DUE``: a job became due; ``CRON_CHANGED``: schedules were
redeclared) and every branch listening to it runs no later than asked. The leader never
names a branch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Self

from awa.clock import Clock
from awa.config import MaintenanceConfig
from awa.maintenance.options import BranchOptions
from awa.store import Store
from awa.telemetry import ATTR_OUTCOME, ATTR_RESCUE_REASON, Instruments, instruments

__all__ = [
    "CRON_CHANGED",
    "DUE",
    "HYGIENE",
    "SLO",
    "WORK",
    "Branch",
    "BranchContext",
    "BranchResult",
]

SLO = "slo"
HYGIENE = "hygiene"

#: Wake-up topics. ``DUE``: an insert or retry announced a job due at some instant.
DUE = "due"
#: ``CRON_CHANGED``: cron schedules were (re)declared.
CRON_CHANGED = "cron_changed"
#: ``WORK``: a runtime claimed jobs (announced at most once a second per runtime), so jobs
#: are running again: branches that stretched their interval on an idle database resume
#: their normal cadence.
WORK = "work"


@dataclass(frozen=True)
class BranchResult:
    """What one run did.

    ``rows``: counts by action (``{"promoted": 12}``). ``more``: the page was full, run
    again at once. ``next_due_in``: seconds until this branch knows it has work (lets the
    lane wake early, e.g. for the next scheduled job). ``idle``: nothing exists that this
    branch could have to act on before something announces it (a topic in ``wakes_on``),
    so the lane may stretch its interval (``Branch.idle_stretch``).
    """

    rows: dict[str, int] = field(default_factory=dict)
    more: bool = False
    next_due_in: float | None = None
    idle: bool = False

    @property
    def total(self) -> int:
        return sum(self.rows.values())


@dataclass
class BranchContext:
    store: Store
    clock: Clock
    config: MaintenanceConfig
    metrics: Instruments = field(default_factory=instruments)

    def count_rescued(self, reason: str, retried: int, failed: int) -> None:
        """``awa.jobs.rescued`` by reason and outcome (what every rescue branch reports)."""
        for outcome, count in (("retried", retried), ("failed", failed)):
            if count:
                self.metrics.rescued.add(count, {ATTR_RESCUE_REASON: reason, ATTR_OUTCOME: outcome})

    @property
    def now(self) -> datetime | None:
        """The ``$now`` for SQL: ``None`` (database clock) unless a test pinned time."""
        return self.clock.db_now()


class Branch:
    """Base class: subclasses set the class attributes and implement ``run_once``."""

    name: ClassVar[str] = "branch"
    lane: ClassVar[str] = HYGIENE
    default_interval: ClassVar[float] = 60.0
    default_timeout: ClassVar[float] = 30.0
    #: Topics that wake this branch before its interval is up (see ``Lane.wake``).
    wakes_on: ClassVar[frozenset[str]] = frozenset()
    #: How far the lane may stretch this branch's interval while its runs report ``idle``
    #: (doubling per idle run, up to ``interval × idle_stretch``; 1 never stretches). A
    #: factor, not a ceiling in seconds, so an interval shortened on purpose (tests, an
    #: operator wanting fast reactions) keeps its stretch proportionally short. A branch
    #: that sets it must report ``idle`` only when what ends the idleness is announced on a
    #: topic it ``wakes_on``, or when waiting up to the stretched interval is acceptable:
    #: an idle database then costs a transaction per stretched interval (issue 19).
    idle_stretch: ClassVar[float] = 1.0
    #: Run on a slot (and pool connection) of its own in a split lane instead of the
    #: lane's shared capacity: for a branch whose lateness users see (cron fires), so
    #: slow neighbours holding every shared slot cannot delay it (ADR 030). Ignored in
    #: ``single`` mode, the one-body-at-a-time loop.
    reserved_slot: ClassVar[bool] = False

    def __init__(self, interval: float | None = None, timeout: float | None = None) -> None:
        self.interval = float(interval if interval is not None else self.default_interval)
        self.timeout = float(timeout if timeout is not None else self.default_timeout)
        if self.interval <= 0 or self.timeout <= 0:
            raise ValueError(f"{self.name}: interval and timeout must be > 0")

    @classmethod
    def from_options(cls, options: BranchOptions) -> Self | None:
        """Build this branch for the registry; ``None`` leaves it out of this process."""
        return cls(interval=options.interval(cls.name))

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} lane={self.lane} every {self.interval}s>"
