"""Blocking access to awa for code that cannot await: ``SyncClient`` and its
``SyncTransaction`` (ADR 023)."""

from awa.sync.client import SyncClient
from awa.sync.transaction import SyncTransaction

__all__ = ["SyncClient", "SyncTransaction"]
