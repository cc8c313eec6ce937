"""The sink contract and the two ways a delivery can fail.

A sink is named (the name keys its deliveries in the outbox, so renaming a sink starts a new
subscription), may subscribe to a subset of event kinds, and opens a *session* per delivery
run: ``async with sink.open() as deliver: await deliver(event)``. A session lets a webhook
reuse one HTTP client (and its keep-alive connection) for a whole batch and close it after.

``deliver`` returns normally when the event was accepted and raises otherwise:

- ``SinkUnavailable`` (and any exception that is not ``EventRejected``): the sink itself is
  down or overloaded. The delivery branch stops using the sink for this run and backs the
  whole sink off (capped exponential backoff with jitter, honouring ``retry_after``); such
  failures never park an event: an outage of any length loses nothing.
- ``EventRejected``: the sink is up but refused *this* event (say HTTP 400). The event is
  retried on its own backoff while the sink keeps receiving others; after
  ``park_after_rejections`` refusals it is parked as undeliverable (kept, reported, and
  flushable or purgeable by an operator).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

from awa.errors import ValidationError
from awa.events.model import Event

__all__ = ["Deliver", "EventRejected", "Sink", "SinkUnavailable", "check_sink_name"]

#: Hands one event to the sink; raises when it was not accepted.
Deliver = Callable[[Event], Awaitable[None]]

_NAME_LIMIT = 100


class SinkUnavailable(Exception):
    """The sink could not take events now (refused connection, timeout, 5xx, 429)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EventRejected(Exception):
    """The sink answered, and refused this event (it will be retried, then parked)."""


@runtime_checkable
class Sink(Protocol):
    """What ``DeliverEvents`` needs from a sink (``WebhookSink``, ``CallableSink``, yours)."""

    @property
    def name(self) -> str:
        """Unique among the sinks of a deployment; keys the sink's deliveries."""
        ...

    @property
    def kinds(self) -> frozenset[str] | None:
        """Event kinds this sink receives; ``None`` for all."""
        ...

    def open(self) -> AbstractAsyncContextManager[Deliver]:
        """A delivery session for one run of the delivery branch."""
        ...


def check_sink_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > _NAME_LIMIT:
        raise ValidationError("sink name", name, f"expected 1..{_NAME_LIMIT} characters")
    return name
