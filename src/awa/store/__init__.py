"""The storage layer: ``Store``, one facade composed of parts over named SQL."""

from awa.store.admin import QueueCount
from awa.store.attempts import CLEAR_PROGRESS, FinishedAttempt, Rescheduled
from awa.store.database import Connection, Database
from awa.store.facade import Store
from awa.store.listener import Listener, open_listener

__all__ = [
    "CLEAR_PROGRESS",
    "Connection",
    "Database",
    "FinishedAttempt",
    "Listener",
    "QueueCount",
    "Rescheduled",
    "Store",
    "open_listener",
]
