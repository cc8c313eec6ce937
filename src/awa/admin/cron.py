"""Cron schedules as an operator sees them: list with last and next fire, pause, resume,
and run now.

A pause here is the operator's (``operator_paused``): it survives the leader's syncs of the
schedules declared in code and restarts, until resumed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from awa.admin.host import AdminHost
from awa.maintenance.branches.cron_evaluate import CronEvaluate
from awa.model import InsertParams, Job
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

    async def run_now(self, name: str) -> Job:
        """Enqueue one run of ``name`` now, recorded like a fire (``fired_total``, last fire,
        the ``cron.fired`` event, and the job the overlap policy follows), whether or not it
        is paused; its scheduled fires go on unchanged. The job carries
        ``metadata["awa.cron"] = {"schedule", "scheduled_at": now, "manual": true}``.
        ``ScheduleNotFound`` when there is no such schedule."""
        store = self._host.store
        job_id = await store.cron.cron_fire_now(name, _manual_fire, self._host.clock.db_now())
        return await store.admin.get_job(job_id)


def _manual_fire(row: dict[str, Any]) -> InsertParams:
    """The job of a manual fire: built by the evaluator's own builder, so it is the job a
    scheduled fire at that instant would be, marked ``manual``."""
    params = CronEvaluate._job(row, row["fired_at"])
    metadata = dict(params.metadata or {})
    metadata["awa.cron"] = {**metadata["awa.cron"], "manual": True}
    return replace(params, metadata=metadata)
