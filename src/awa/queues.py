"""Pausing and resuming whole queues: the operator's API (``client.queues``).

A paused queue keeps receiving jobs, but no runtime claims any of them: they stay
``available``, nothing is lost or re-attempted, and every runtime stops within its next
claim (the claim statement itself checks the pause; ADR 024). Jobs already running finish
normally. Resuming wakes the queue's dispatchers through the same notification an insert
sends, so claims restart at once, not a poll interval later::

    await client.queues.pause("emails", reason="provider outage")
    await client.queues.resume("emails")

A pause lives in the database (``awa.queue_pauses``): it survives restarts and applies to
every process, whichever one made it. ``awa queues pause/resume`` is the same from the CLI.
"""

from __future__ import annotations

import builtins
import logging
from typing import Protocol

from awa.clock import Clock
from awa.errors import ValidationError
from awa.model import MAX_QUEUE_LENGTH
from awa.store import Store
from awa.store.queues import PauseOutcome, QueuePause
from awa.validation import check_text

__all__ = ["MAX_REASON_LENGTH", "PauseOutcome", "QueuePause", "Queues", "QueuesHost"]

log = logging.getLogger("awa.queues")

#: Longest operator note (``reason``) and ``by`` label kept with a pause.
MAX_REASON_LENGTH = 1000


class QueuesHost(Protocol):
    """What ``Queues`` needs from its owner (an ``awa.Client``, or an admin's host)."""

    clock: Clock

    @property
    def store(self) -> Store: ...


def _optional_text(name: str, value: str | None) -> str | None:
    return None if value is None else check_text(name, value, MAX_REASON_LENGTH)


class Queues:
    """Pause, resume and list paused queues over the owner's pool (``client.queues``)."""

    def __init__(self, host: QueuesHost) -> None:
        self._host = host

    async def pause(
        self, name: str, reason: str | None = None, *, by: str | None = None
    ) -> PauseOutcome:
        """Stop every runtime claiming jobs of queue ``name`` until resumed.

        Idempotent: pausing a paused queue keeps its first pause (time, ``by``, reason) and
        returns it with ``created=False``. ``by`` labels who paused it (default: the
        database role). A name no runtime, declaration or job knows raises
        ``ValidationError``: a typo must not look like a successful pause.
        """
        queue = check_text("queue", name, MAX_QUEUE_LENGTH)
        note = _optional_text("reason", reason)
        label = _optional_text("by", by)
        outcome = await self._host.store.queues.pause(queue, label, note, self._host.clock.db_now())
        if outcome is None:
            raise ValidationError(
                "queue",
                name,
                "unknown queue: no runtime serves it, no application declares it and it "
                "has no waiting jobs (check the name with `awa queues`)",
            )
        if outcome.created:
            log.info("queue %r paused by %s", queue, outcome.pause.paused_by)
        return outcome

    async def resume(self, name: str) -> bool:
        """Let runtimes claim queue ``name`` again, waking its dispatchers now. Returns
        ``False`` (and changes nothing) when it was not paused."""
        queue = check_text("queue", name, MAX_QUEUE_LENGTH)
        resumed = await self._host.store.queues.resume(queue)
        if resumed:
            log.info("queue %r resumed", queue)
        return resumed

    async def list(self) -> builtins.list[QueuePause]:
        """Every paused queue (who paused it, when, why), by name."""
        return await self._host.store.queues.paused()

    async def is_paused(self, name: str) -> bool:
        """Whether queue ``name`` is paused now."""
        queue = check_text("queue", name, MAX_QUEUE_LENGTH)
        return any(p.queue == queue for p in await self.list())
