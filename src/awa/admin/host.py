"""What every operator area stands on: a pool and a clock (a protocol, so that ``admin``
need not import ``awa.client``, which sits beside it)."""

from __future__ import annotations

from typing import Protocol

from awa.clock import Clock
from awa.store import Store

__all__ = ["AdminHost"]


class AdminHost(Protocol):
    """A pool (``store``) and a clock; ``awa.Client`` has both. The store is read at each
    call, so an area may be built before its host connects."""

    clock: Clock

    @property
    def store(self) -> Store: ...
