"""The jobs this process holds: from claim until their result is durably recorded.

The heartbeat reads this set (one statement for all of them); the completion buffer removes
entries once their result is written, so a job whose result is still buffered keeps its
heartbeat and is never mistaken for abandoned.

Each entry also remembers two facts the heartbeat and the completion buffer share: whether the
handler reported progress during this attempt (so the final write carries it even when a
heartbeat took it first and lost a race with that write), and whether the handler's result is
already with the completion buffer (so a heartbeat that finds the row gone knows our own flush
did it, not another process).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import anyio

from awa.handlers import JobContext
from awa.model import Job

__all__ = ["InFlight", "InFlightJob", "StopReason"]


class StopReason(enum.Enum):
    LOST = "lost"  # the run_lease moved on: rescued elsewhere; our result would be stale
    CANCEL_REQUESTED = "cancel_requested"  # an operator cancelled the running job
    SHUTDOWN = "shutdown"  # the grace period ran out
    #: Self-fenced (ADR 014): neither presence nor beat, the leader may rescue the job.
    #: The attempt is handed back (requeued, lease-guarded): if the rescue came first the
    #: write is stale and ignored; if the partition healed first, the job runs again now
    #: instead of waiting for the heartbeat-staleness backstop.
    FENCED = "fenced"


@dataclass(slots=True)
class InFlightJob:
    job: Job
    context: JobContext
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    stop_reason: StopReason | None = None
    stop_detail: str | None = None  # the operator's cancel reason, when there is one
    progress_reported: bool = False  # set_progress was called during this attempt
    result_buffered: bool = False  # the handler finished; its result waits to be written

    def stop(self, reason: StopReason) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.scope.cancel()

    def take_progress(self) -> tuple[bool, Any]:
        """(changed since the last take, latest value): for the heartbeat."""
        changed, value = self.context.take_progress()
        if changed:
            self.progress_reported = True
        return changed, value

    def hand_over(self) -> tuple[bool, Any]:
        """Mark the result as buffered; return (progress reported during this attempt, its
        latest value) for the write that ends the attempt."""
        self.result_buffered = True
        changed, value = self.context.take_progress()
        return changed or self.progress_reported, value


class InFlight:
    def __init__(self) -> None:
        self._jobs: dict[int, InFlightJob] = {}
        self._empty = anyio.Event()
        self._empty.set()

    def add(self, entry: InFlightJob) -> None:
        self._jobs[entry.job.id] = entry
        if self._empty.is_set():
            self._empty = anyio.Event()

    def discard(self, job_id: int, run_lease: int | None = None) -> None:
        """Forget the job's entry; with ``run_lease``, only if it is that attempt's (the
        same job may already run again here under a newer lease)."""
        if self.get(job_id, run_lease) is None:
            return
        del self._jobs[job_id]
        if not self._jobs:
            self._empty.set()

    def get(self, job_id: int, run_lease: int | None = None) -> InFlightJob | None:
        """The job's entry; with ``run_lease``, only if it is that attempt's."""
        entry = self._jobs.get(job_id)
        if entry is None or (run_lease is not None and entry.job.run_lease != run_lease):
            return None
        return entry

    def snapshot(self) -> list[InFlightJob]:
        return list(self._jobs.values())

    def __len__(self) -> int:
        return len(self._jobs)

    async def wait_empty(self) -> None:
        await self._empty.wait()
