"""``Store``: one facade composed of parts, each over the same ``Database``.

Why composition and not a class per concern stacked by inheritance: a part holds only its
own queries (``store/<x>.py`` runs ``sql/<x>.sql`` and nothing else), so which statements a
caller can reach is read off the attribute it uses (``store.cron.cron_list()``), and a
maintenance branch, a worker and an operator share one pool without a ``sibling()`` to
re-wrap it. Parts that need another part's statement inside their own transaction
(requeue wake-ups, unique keys, the cancel-request rule) are handed that part, not a copy
of its SQL.

The leader's fenced store is ``store.fenced(term)``: the same pool, every connection fenced
by ``term`` (``awa.store.database``, ADR 012).
"""

from __future__ import annotations

from awa.store.admin import JobsAdmin
from awa.store.callbacks import Callbacks
from awa.store.cron import Cron
from awa.store.database import DEFAULT_ACQUIRE_TIMEOUT, Database
from awa.store.dlq import DeadLetters
from awa.store.events import Events
from awa.store.health_history import HealthHistory
from awa.store.jobs import Jobs
from awa.store.leadership import Leadership
from awa.store.maintenance import Maintenance
from awa.store.observe import Observe
from awa.store.queues import Queues
from awa.store.recovery import Recovery
from awa.store.runtimes import Runtimes

__all__ = ["Store"]


class Store:
    """The typed facade over awa's named SQL. Create with ``await Store.open(url)``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.jobs = Jobs(db)
        self.admin = JobsAdmin(db, self.jobs)
        self.runtimes = Runtimes(db)
        self.leadership = Leadership(db)
        self.health_history = HealthHistory(db)
        self.maintenance = Maintenance(db, self.health_history)
        self.recovery = Recovery(db, self.jobs)
        self.cron = Cron(db, self.jobs)
        self.events = Events(db)
        self.callbacks = Callbacks(db, self.jobs)
        self.dlq = DeadLetters(db, self.jobs)
        self.observe = Observe(db, self.leadership, self.maintenance)
        self.queues = Queues(db)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT,
        term: int | None = None,
    ) -> Store:
        """Open a pool for ``url``; with ``term``, every connection is fenced by it."""
        db = await Database.open(
            url, min_size=min_size, max_size=max_size, acquire_timeout=acquire_timeout, term=term
        )
        return cls(db)

    @property
    def url(self) -> str:
        return self.db.url

    @property
    def term(self) -> int | None:
        """The leadership term this store writes in (``None``: not fenced)."""
        return self.db.term

    def fenced(self, term: int | None) -> Store:
        """A store over this pool whose every connection is fenced by ``term``."""
        return Store(self.db.fenced(term))

    async def close(self) -> None:
        """Close the pool (bounded: see ``Database.close``)."""
        await self.db.close()
