"""Lifecycle events and the sinks they are delivered to.

Pure layer: the event model, the ``Sink`` contract, ``WebhookSink`` (httpx, HMAC-signed)
and ``CallableSink``. Writing events (the outbox, in the same statement as the change) is
the store's job; delivering them with retries is the ``deliver_events`` maintenance branch's
(see ``adr/006-event-outbox.md``).
"""

from awa.events.callable_sink import CallableSink
from awa.events.model import EVENT_KINDS, Event, EventKind, check_kinds
from awa.events.sink import Deliver, EventRejected, Sink, SinkUnavailable, check_sink_name
from awa.events.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSink,
    sign,
    verify_signature,
)

__all__ = [
    "EVENT_KINDS",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "CallableSink",
    "Deliver",
    "Event",
    "EventKind",
    "EventRejected",
    "Sink",
    "SinkUnavailable",
    "WebhookSink",
    "check_kinds",
    "check_sink_name",
    "sign",
    "verify_signature",
]
