"""Cron schedules as an operator sees them: list with last and next fire, pause, resume.

A pause here is the operator's (``operator_paused``): it survives the leader's syncs of the
schedules declared in code and restarts, until resumed.
"""

from __future__ import annotations

from typing import Any

from awa.admin.host import AdminHost
from awa.store.cron import Cron

__all__ = ["Schedules"]


class Schedules:
    """``admin.cron``."""

    def __init__(self, host: AdminHost) -> None:
        self._host = host

    def _store(self) -> Cron:
        return self._host.store.cron

    async def all(self) -> list[dict[str, Any]]:
        """Every synced schedule by name: its ``queue`` (where fires are enqueued, as
        resolved when published), policies, last success, last fire, next fire, misses."""
        return await self._store().cron_list()

    async def pause(self, name: str) -> None:
        """Stop firing ``name`` until resumed."""
        await self._store().cron_set_operator_paused(name, True, self._host.clock.db_now())

    async def resume(self, name: str) -> None:
        """Fire ``name`` again from now on (the paused time is not caught up)."""
        await self._store().cron_set_operator_paused(name, False, self._host.clock.db_now())
