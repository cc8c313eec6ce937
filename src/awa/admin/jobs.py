"""Jobs as an operator sees them: list, inspect, cancel, retry, and depth per queue.

The same operations ``awa.Client`` offers library code (``client.list_jobs`` …); here they
stand on a host's pool so the CLI and the dashboard share one implementation.
"""

from __future__ import annotations

from collections.abc import Iterable

from awa.admin.host import AdminHost
from awa.model import Job, JobState, parse_state
from awa.store import QueueCount

__all__ = ["Jobs", "QueueCount"]


class Jobs:
    """``admin.jobs``."""

    def __init__(self, host: AdminHost) -> None:
        self._host = host

    async def find(
        self,
        *,
        state: JobState | str | None = None,
        queue: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[Job]:
        """Newest first; page with ``before_id`` (the last id of the previous page)."""
        parsed = parse_state(state) if isinstance(state, str) else state
        return await self._host.store.admin.list_jobs(
            state=parsed, queue=queue, kind=kind, limit=limit, before_id=before_id
        )

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
