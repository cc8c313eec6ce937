"""Blocking access to awa for code that cannot await: ``SyncClient`` (ADR 022)."""

from awa.sync.client import SyncClient

__all__ = ["SyncClient"]
