"""The storage layer: the typed ``Store`` facade over named SQL."""

from awa.store.store import Connection, FinishedAttempt, QueueCount, Rescheduled, Store

__all__ = ["Connection", "FinishedAttempt", "QueueCount", "Rescheduled", "Store"]
