"""``Admin``: one object per pool, composed of the operator areas.

Two ways in, because the surfaces differ in what they need from the database:

- ``Admin.of(client)`` borrows a connected ``awa.Client``'s pool and clock. The client
  checks the schema version when it connects, so verbs that change jobs refuse to run
  against an unmigrated database with the usual "run `awa migrate`" message.
- ``await Admin.open(url, pool_size=…)`` opens a small pool of its own and no schema check:
  the read-only status views (maintenance status, events, catalog, the dashboard) read what
  the maintenance leader persisted and stay cheap (one or two connections).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from awa.admin.cron import Schedules
from awa.admin.dlq import DeadLetters
from awa.admin.events import Events
from awa.admin.host import AdminHost
from awa.admin.jobs import Jobs
from awa.admin.maintenance import Maintenance
from awa.admin.queues import Queues
from awa.clock import Clock, SystemClock
from awa.store import Store

__all__ = ["Admin"]


@dataclass
class _OwnPool:
    """The host of an ``Admin`` that opened its own pool."""

    store: Store
    clock: Clock = field(default_factory=SystemClock)


class Admin:
    """The operator operations over one database (see the module docstring)."""

    def __init__(self, host: AdminHost, *, owns_pool: bool = False) -> None:
        self._host = host
        self._owns_pool = owns_pool
        self.jobs = Jobs(host)
        self.cron = Schedules(host)
        #: The hold's operator API (declarations made here are not published anywhere).
        self.dlq = DeadLetters(host)
        self.events = Events(host)
        self.maintenance = Maintenance(host)
        #: Pause, resume and list paused queues (ADR 024).
        self.queues = Queues(host)

    @classmethod
    def of(cls, host: AdminHost) -> Admin:
        """Operate through ``host``'s pool (a connected ``awa.Client``); closing the
        ``Admin`` leaves the pool open."""
        return cls(host)

    @classmethod
    async def open(cls, url: str, *, pool_size: int = 1) -> Admin:
        """Open a pool of at most ``pool_size`` connections to ``url`` (no schema check);
        ``close()`` closes it."""
        store = await Store.open(url, min_size=1, max_size=pool_size)
        return cls(_OwnPool(store), owns_pool=True)

    async def close(self) -> None:
        if self._owns_pool:
            self._owns_pool = False
            await self._host.store.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
