"""The storage layer: the typed ``Store`` facade over named SQL."""

from awa.store.store import (
    Connection,
    FinishedAttempt,
    Listener,
    QueueCount,
    Rescheduled,
    Store,
    open_listener,
)

__all__ = [
    "Connection",
    "FinishedAttempt",
    "Listener",
    "QueueCount",
    "Rescheduled",
    "Store",
    "open_listener",
]
