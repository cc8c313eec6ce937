"""The storage layer: the typed ``Store`` facade over named SQL."""

from awa.store.store import (
    CLEAR_PROGRESS,
    Connection,
    FinishedAttempt,
    Listener,
    QueueCount,
    Rescheduled,
    Store,
    open_listener,
)

__all__ = [
    "CLEAR_PROGRESS",
    "Connection",
    "FinishedAttempt",
    "Listener",
    "QueueCount",
    "Rescheduled",
    "Store",
    "open_listener",
]
