"""Self-fencing of claims: a runtime claims only while it holds its presence lock.

The presence lock is how the leader tells a live holder from a dead one (ADR 014). While
this runtime cannot show it holds the lock (its presence connection died or stopped
answering), a job it claims would have no live evidence behind it, so the dispatchers stop
claiming until presence is re-established; handlers already running go on (their attempts
are protected by the runtime's beat, see ``Runtime``).
"""

from __future__ import annotations

import anyio

__all__ = ["ClaimGate"]


class ClaimGate:
    def __init__(self) -> None:
        self._opened = anyio.Event()
        self._opened.set()
        self.reason: str | None = None  #: why claims are paused, while they are
        self.closures = 0  #: how many times claims were paused

    @property
    def is_open(self) -> bool:
        return self._opened.is_set()

    def close(self, reason: str) -> None:
        if self.is_open:
            self._opened = anyio.Event()
            self.closures += 1
        self.reason = reason

    def open(self) -> None:
        self.reason = None
        self._opened.set()

    async def wait_open(self) -> None:
        await self._opened.wait()
