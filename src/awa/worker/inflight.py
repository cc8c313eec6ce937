"""The jobs this process holds: from claim until their result is durably recorded.

The heartbeat reads this set (one statement for all of them); the completion buffer removes
entries once their result is written, so a job whose result is still buffered keeps its
heartbeat and is never mistaken for abandoned.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import anyio

from awa.handlers import JobContext
from awa.model import Job

__all__ = ["InFlight", "InFlightJob", "StopReason"]


class StopReason(enum.Enum):
    LOST = "lost"  # the run_lease moved on: rescued elsewhere; our result would be stale
    CANCEL_REQUESTED = "cancel_requested"  # an operator cancelled the running job
    SHUTDOWN = "shutdown"  # the grace period ran out


@dataclass
class InFlightJob:
    job: Job
    context: JobContext
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    stop_reason: StopReason | None = None
    stop_detail: str | None = None  # the operator's cancel reason, when there is one

    def stop(self, reason: StopReason) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.scope.cancel()


class InFlight:
    def __init__(self) -> None:
        self._jobs: dict[int, InFlightJob] = {}
        self._empty = anyio.Event()
        self._empty.set()

    def add(self, entry: InFlightJob) -> None:
        self._jobs[entry.job.id] = entry
        if self._empty.is_set():
            self._empty = anyio.Event()

    def discard(self, job_id: int) -> None:
        self._jobs.pop(job_id, None)
        if not self._jobs:
            self._empty.set()

    def get(self, job_id: int) -> InFlightJob | None:
        return self._jobs.get(job_id)

    def snapshot(self) -> list[InFlightJob]:
        return list(self._jobs.values())

    def __len__(self) -> int:
        return len(self._jobs)

    async def wait_empty(self) -> None:
        await self._empty.wait()
