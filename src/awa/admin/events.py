"""The lifecycle-event outbox as an operator sees it: events with their per-sink delivery
state, sink status, and the three repairs (flush, purge, forget).

Delivery itself is the ``deliver_events`` maintenance branch's job; nothing here delivers.
"""

from __future__ import annotations

from typing import Any

from awa.admin.host import AdminHost
from awa.store.events import Events as StoreEvents

__all__ = ["Events"]


class Events:
    """``admin.events``."""

    def __init__(self, host: AdminHost) -> None:
        self._host = host

    def _store(self) -> StoreEvents:
        return self._host.store.events

    async def recent(
        self, *, limit: int = 50, before_id: int | None = None, kind: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first, each with ``deliveries`` (one dict per sink)."""
        return await self._store().event_list(limit=limit, before_id=before_id, kind=kind)

    async def sinks(self) -> list[dict[str, Any]]:
        """Each sink: backlog, parked, backoff, last error."""
        return await self._store().event_sink_status()

    async def flush(self, sink: str | None = None) -> int:
        """Make outstanding deliveries (of ``sink``, or all; parked ones too) due now and end
        the sink's backoff; the deliveries touched."""
        return await self._store().event_flush(sink)

    async def purge(self, sink: str | None = None, *, include_pending: bool = False) -> int:
        """Drop parked deliveries (pending ones too when asked): the only way an undelivered
        event is dropped. How many."""
        return await self._store().event_purge(sink, include_pending=include_pending)

    async def forget(self, sink: str) -> int:
        """Forget a sink removed from the code (its registration and outstanding
        deliveries); the deliveries dropped."""
        return await self._store().event_forget_sink(sink)
