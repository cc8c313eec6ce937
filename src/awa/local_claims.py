"""Claims at insert: a producer whose own process runs a dispatcher for the job's queue
hands the job to it in the insert itself (ADR 045).

A job inserted with ``client.insert`` normally reaches a handler in three more steps after
the producer's commit: the NOTIFY to a listening connection, the dispatcher's wake-up, and
a claim round trip. When the runtime serving the queue lives in the producer's process
(one ``Client`` for both, the usual shape of a service that enqueues and works), none of
that is needed: the dispatcher holds a free slot for the job, the insert writes it already
claimed for that runtime (when nothing in the queue is ahead of it), and the handler starts
as soon as the commit returns. Everything else (unique keys, a caller's transaction, jobs
due later, a paused queue, a backlog) takes the ordinary path.

This module is the registry the client consults; the dispatcher implements ``InsertTaker``.
It sits outside ``awa.worker`` so the client does not import the worker side.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from awa.clock import Clock
from awa.model import InsertParams, Job

if TYPE_CHECKING:
    from awa.store import Store

__all__ = ["InsertTaker", "LocalClaims"]


class InsertTaker(Protocol):
    """A dispatcher that can take a job at insert (``awa.worker.QueueDispatcher``)."""

    queue: str

    def reserve(self, kind: str) -> bool:
        """Hold a free slot for a job of ``kind`` (synchronously), or say no."""
        ...

    async def insert_reserved(
        self, store: Store, params: InsertParams, now: datetime | None
    ) -> Job:
        """Insert ``params`` on ``store`` with the slot held by ``reserve``, which is given
        back unless the job came back claimed (then the taker runs it); the stored job."""
        ...


class LocalClaims:
    """The dispatchers of this client's running runtimes, by queue (the runtime adds them
    once dispatching and removes them before it stops claiming)."""

    def __init__(self) -> None:
        self._by_queue: dict[str, list[InsertTaker]] = {}

    def add(self, taker: InsertTaker) -> None:
        self._by_queue.setdefault(taker.queue, []).append(taker)

    def discard(self, taker: InsertTaker) -> None:
        takers = self._by_queue.get(taker.queue)
        if takers is not None and taker in takers:
            takers.remove(taker)
            if not takers:
                del self._by_queue[taker.queue]

    def reserve(self, params: InsertParams, clock: Clock) -> InsertTaker | None:
        """A taker holding a slot for ``params``, or None when the job must take the
        ordinary path: it has a unique key (its insert is a transaction of its own), it is
        due after ``clock.now()`` (read only when a dispatcher here serves its queue), or
        no dispatcher here serves its queue and kind with a slot free."""
        takers = self._by_queue.get(params.queue)
        if not takers or params.unique_key is not None:
            return None
        if params.run_at is not None and params.run_at > clock.now():
            return None
        for taker in takers:
            if taker.reserve(params.kind):
                return taker
        return None
