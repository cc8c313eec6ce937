"""Jobs as an operator sees them: list, inspect, cancel, retry, discard — one job or every
job a ``JobFilter`` matches — and depth per queue.

The same operations ``awa.Client`` offers library code (``client.list_jobs`` …); here they
stand on a host's pool so the CLI and the dashboard share one implementation.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from awa.admin.host import AdminHost
from awa.errors import ValidationError
from awa.model import Job, JobState
from awa.store import QueueCount
from awa.store.admin_bulk import BulkOutcome
from awa.store.job_filter import BULK_ACTIONS, JobFilter

__all__ = ["BULK_ACTIONS", "BulkOutcome", "JobFilter", "Jobs", "QueueCount"]


class Jobs:
    """``admin.jobs``."""

    def __init__(self, host: AdminHost) -> None:
        self._host = host

    async def find(
        self,
        where: JobFilter | None = None,
        *,
        state: JobState | str | None = None,
        queue: str | None = None,
        kind: str | None = None,
        tag: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[Job]:
        """Newest first; page with ``before_id`` (the last id of the previous page). Give
        a ``JobFilter``, or its fields as keywords (``since``/``until``: finished in that
        range)."""
        given = JobFilter.of(state=state, queue=queue, kind=kind, tag=tag, since=since, until=until)
        if where is not None and given != JobFilter():
            raise ValidationError("where", where, "give a JobFilter or its fields, not both")
        where = where if where is not None else given
        return await self._host.store.admin.list_jobs(where, limit=limit, before_id=before_id)

    async def get(self, job_id: int) -> Job:
        """One job; ``JobNotFound`` if there is none."""
        return await self._host.store.admin.get_job(job_id)

    async def cancel(self, job_id: int, reason: str = "cancelled by operator") -> Job:
        """Cancel a waiting job now; a running one is stopped at its runtime's next
        heartbeat (the returned job then still shows ``running``)."""
        return await self._host.store.admin.cancel_job(job_id, reason, self._host.clock.db_now())

    async def retry(self, job_id: int) -> Job:
        """Run a finished, scheduled or retryable job again now."""
        return await self._host.store.admin.retry_job(job_id, self._host.clock.db_now())

    async def discard(self, job_id: int) -> Job:
        """Delete a job for good — waiting, scheduled, retryable or finished — freeing its
        unique key; returns it as it was. A running job must be cancelled first
        (``InvalidTransition``, the console's 409)."""
        return await self._host.store.admin.discard_job(job_id)

    async def count(self, action: str, where: JobFilter) -> int:
        """How many jobs ``action`` (retry, cancel, discard) would touch under ``where``:
        the figure an operator confirms before a bulk action."""
        return await self._host.store.admin.bulk.count(action, where)

    async def bulk_retry(self, where: JobFilter, *, confirmed: int) -> BulkOutcome:
        """Retry every scheduled, retryable or finished job ``where`` matches, at most
        ``confirmed`` (``ConfirmationExceeded`` if more match now), in batches."""
        return await self._bulk("retry", where, confirmed)

    async def bulk_cancel(
        self, where: JobFilter, *, confirmed: int, reason: str = "cancelled by operator"
    ) -> BulkOutcome:
        """Cancel every live job ``where`` matches (running ones are asked to stop)."""
        return await self._bulk("cancel", where, confirmed, reason)

    async def bulk_discard(self, where: JobFilter, *, confirmed: int) -> BulkOutcome:
        """Discard every job ``where`` matches that is not running."""
        return await self._bulk("discard", where, confirmed)

    async def bulk(
        self, action: str, where: JobFilter, *, confirmed: int, batch: int = 1_000
    ) -> BulkOutcome:
        """``bulk_<action>`` by name (the console's and CLI's entry)."""
        return await self._bulk(action, where, confirmed, batch=batch)

    async def _bulk(
        self,
        action: str,
        where: JobFilter,
        confirmed: int,
        reason: str = "cancelled by operator",
        batch: int = 1_000,
    ) -> BulkOutcome:
        return await self._host.store.admin.bulk.apply(
            action,
            where,
            confirmed=confirmed,
            batch=batch,
            reason=reason,
            now=self._host.clock.db_now(),
        )

    async def state_counts(self, ids: Iterable[int]) -> dict[JobState, int]:
        """How many of the jobs ``ids`` are in each state, every state listed (zeros
        included): the figures of one producer's own jobs, not the whole database's. An id
        not found is not counted (never inserted, or a finished job already rotated out of
        the history), so the counts may add up to fewer than ``ids``."""
        found = await self._host.store.admin.state_counts_of(list(ids))
        return {state: found.get(state.value, 0) for state in JobState}

    async def queue_stats(self) -> list[QueueCount]:
        """Count and lag per queue and state, computed now (not the leader's snapshot)."""
        return await self._host.store.admin.queue_counts(self._host.clock.db_now())
