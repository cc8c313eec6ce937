"""Term fencing for the maintenance leader's stores (ADR 012).

A store opened with a leadership ``term`` runs every pooled connection it hands out inside a
transaction that first runs ``term_fence``: a share lock on the row of ``awa.leader_term``,
taken only while the row still holds that term. So every statement of every method, and
every nested ``c.transaction()`` (a savepoint inside it), commits only if no newer term
began before it; a newer leader's term bump, an UPDATE of that row, waits for the fenced
transactions still in flight, and each one begun later sees the new term and raises
``LeadershipLost`` without writing anything. No method needs to know: fencing is where the
connection comes from.

The cost is per pooled use, not per statement: BEGIN, the fence and COMMIT around what was
one implicit transaction, so the number of transactions does not change (ADR 012 measures
it). Stores opened without a term (the CLI, tests, ``tick()`` before it leads) are not
fenced and behave exactly as before.

Closing is bounded (``Store.close``): a pool whose connections no longer answer is terminated after
``CLOSE_TIMEOUT`` rather than awaited until TCP gives up, so a deposed leader's shutdown
cannot hang on its own pools.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Self, TypeVar, cast

from awa.errors import LeadershipLost
from awa.store.queries import load_queries
from awa.store.store import DEFAULT_ACQUIRE_TIMEOUT, Connection, Store

__all__ = ["FENCE_IDLE_LIMIT", "FencedStore"]

#: How long a fenced transaction may sit idle between statements before the server ends
#: its session. A live leader never pauses that long inside a transaction; a vanished one
#: (host crash, partition) would otherwise keep the term row share-locked, and the next
#: leader's term bump waiting, until TCP gives up.
FENCE_IDLE_LIMIT = "5s"

_QUERIES = load_queries(frozenset({"term_fence"}))
StoreT = TypeVar("StoreT", bound=Store)


class FencedStore(Store):
    """A ``Store`` whose pooled connections are fenced by ``term`` when it is set."""

    #: The leadership term this store writes in; ``None``: not fenced. Set by ``open`` or
    #: right after it, before the store's first use.
    term: int | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT,
        term: int | None = None,
    ) -> Self:
        store = await super().open(
            url, min_size=min_size, max_size=max_size, acquire_timeout=acquire_timeout
        )
        store.term = term
        return store

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Connection]:
        """A pooled connection; with a ``term``, inside a transaction that commits when the
        block ends (rolls back if it raises) and only if the term is still current."""
        term = self.term
        if term is None:
            async with super().acquire() as c:
                yield c
            return
        async with super().acquire() as c, c.transaction():
            if await c.fetchrow(_QUERIES["term_fence"].sql, term, FENCE_IDLE_LIMIT) is None:
                raise LeadershipLost(term)
            yield c

    def sibling(self, kind: type[StoreT]) -> StoreT:
        """A store of another kind over this one's pool, fenced by the same term (a branch
        that needs the callbacks' or the dead letters' queries writes in its term too)."""
        store = _fenced(kind)(self.pool, self.url, acquire_timeout=self.acquire_timeout)
        store.term = self.term
        return cast(StoreT, store)


def _fenced(kind: type[Store]) -> type[FencedStore]:
    """``kind`` with ``FencedStore``'s connection handling in front (made once per kind)."""
    if issubclass(kind, FencedStore):
        return kind
    made = _FENCED.get(kind)
    if made is None:
        made = _FENCED[kind] = type(f"Fenced{kind.__name__}", (FencedStore, kind), {})
    return made


_FENCED: dict[type[Store], type[FencedStore]] = {}
