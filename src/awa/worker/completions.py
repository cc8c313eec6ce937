"""Buffered, batched recording of attempt results.

Why: a statement per finished job caps throughput at the round-trip rate. Results are
queued here and written together: all completions in one statement, all failures/cancels in
one, all retries/snoozes in one, after at most ``flush_interval`` or ``batch`` items. Every
write is guarded by ``run_lease``; a result whose lease moved on (the job was rescued or
cancelled meanwhile) is rejected by the database and counted as stale, never applied.

Parking (a handler returned ``WaitForCallback``) is one more class: all parks of a flush go
to the callback store in one transaction of a fixed number of statements, guarded by
run_lease and by the registered callback id like every other result.

A failed flush keeps its items and retries with capped backoff: results are never dropped,
and the jobs keep their heartbeat (they stay in ``InFlight``) until written.

Progress: the heartbeat writes progress only while an attempt runs, so an attempt that ends
between two beats would lose what it reported last. ``add`` therefore takes the attempt's
final progress from its ``InFlight`` entry and the same batched statement that records the
result writes it (no extra statement; a batch in which no job reported progress sends none).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import anyio
from anyio.abc import TaskStatus

from awa.backoff import Backoff
from awa.clock import Clock
from awa.model import JobState
from awa.store import CLEAR_PROGRESS, FinishedAttempt, Rescheduled, Store
from awa.store.callbacks import ParkedAttempt
from awa.telemetry import Instruments
from awa.worker.inflight import InFlight
from awa.worker.loop_errors import LoopErrors
from awa.worker.outcomes import Decision

__all__ = ["CompletionBuffer", "PendingResult"]

log = logging.getLogger("awa.worker.completions")

_RETRY_BACKOFF = Backoff(base=0.05, factor=2.0, cap=5.0, jitter=0.2)


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~0.7 µs more per job
class PendingResult:
    job_id: int
    run_lease: int
    queue: str
    decision: Decision
    progress: Any = None  # the attempt's final progress: None keeps, CLEAR_PROGRESS clears
    kind: str = "unknown"  # the job's kind, for awa.jobs.finished (bounded by handlers)


class CompletionBuffer:
    def __init__(
        self,
        store: Store,
        inflight: InFlight,
        clock: Clock,
        metrics: Instruments,
        *,
        flush_interval: float,
        batch: int,
    ) -> None:
        self._store = store
        self._callbacks = store.callbacks
        self._inflight = inflight
        self._clock = clock
        self._metrics = metrics
        self._flush_interval = flush_interval
        self._batch = batch
        self._pending: list[PendingResult] = []
        self._has_items = anyio.Event()
        self._full = anyio.Event()
        self._closing = False
        self.stale = 0
        self.applied = 0

    def add(self, item: PendingResult) -> None:
        """Buffer a finished attempt's result, with the progress its handler reported."""
        entry = self._inflight.get(item.job_id, item.run_lease)
        if entry is not None:
            reported, value = entry.hand_over()
            if reported:
                item = replace(item, progress=CLEAR_PROGRESS if value is None else value)
        self._pending.append(item)
        self._has_items.set()
        if len(self._pending) >= self._batch:
            self._full.set()

    def __len__(self) -> int:
        return len(self._pending)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Flush loop; returns after ``close()`` once everything buffered is written."""
        task_status.started()
        errors = LoopErrors("flush", self._clock, self._metrics, _RETRY_BACKOFF)
        while True:
            await self._has_items.wait()
            if not self._closing and len(self._pending) < self._batch:
                with anyio.move_on_after(self._flush_interval):
                    await self._full.wait()
            try:
                await self.flush()
                errors.succeeded()
            except Exception as exc:  # every class: the results stay buffered and retry
                self._metrics.flush_errors.add(1, {"error.type": type(exc).__name__})
                await errors.failed(exc, f"flushing {len(self._pending)} results")
            if self._closing and not self._pending:
                return

    def close(self) -> None:
        """Ask ``run`` to write what is left and return."""
        self._closing = True
        self._has_items.set()

    async def flush(self) -> None:
        """Write everything buffered now: one statement per result class (two when a class
        holds two attempts of one job). A class whose statement fails goes back to the
        buffer; classes already written stay written."""
        items, self._pending = self._pending, []
        self._has_items = anyio.Event()
        self._full = anyio.Event()
        classes = [
            [i for i in items if i.decision.state is JobState.COMPLETED],
            [i for i in items if i.decision.state in (JobState.FAILED, JobState.CANCELLED)],
            [i for i in items if i.decision.state in (JobState.RETRYABLE, JobState.SCHEDULED)],
            [i for i in items if i.decision.state is JobState.WAITING_EXTERNAL],
        ]
        groups = [group for items_of in classes for group in _one_attempt_per_job(items_of)]
        for index, group in enumerate(groups):
            if not group:
                continue
            try:
                applied = await self._write(group)
            except BaseException:
                for unwritten in reversed(groups[index:]):
                    self._pending[:0] = unwritten
                self._has_items.set()
                raise
            self._account(group, applied)
        if self._pending or self._closing:
            self._has_items.set()

    async def _write(self, group: list[PendingResult]) -> set[int]:
        now = self._clock.db_now()
        state = group[0].decision.state
        if state is JobState.COMPLETED:
            return await self._store.jobs.complete_batch(
                [i.job_id for i in group],
                [i.run_lease for i in group],
                [i.decision.result for i in group],
                now,
                progress=[i.progress for i in group],
            )
        if state in (JobState.FAILED, JobState.CANCELLED):
            return await self._store.jobs.finalize_batch(
                [
                    FinishedAttempt(
                        i.job_id, i.run_lease, i.decision.state, i.decision.error, i.progress
                    )
                    for i in group
                ],
                now,
            )
        if state is JobState.WAITING_EXTERNAL:
            return await self._callbacks.park_jobs(
                [ParkedAttempt(i.job_id, i.run_lease, _callback_id(i), i.progress) for i in group],
                now,
            )
        return await self._store.jobs.reschedule_batch(
            [
                Rescheduled(
                    i.job_id,
                    i.run_lease,
                    i.decision.state,
                    _run_at(i),
                    i.decision.error,
                    i.decision.give_back_attempt,
                    i.progress,
                )
                for i in group
            ],
            now,
        )

    def _account(self, group: list[PendingResult], applied: set[int]) -> None:
        # The store answers with job ids; a group holds one attempt per job
        # (_one_attempt_per_job), so an applied id is that attempt's.
        for item in group:
            # Only this attempt's entry: once the write committed, the job may already run
            # again here under a newer lease (a retry due at once, a resumed callback), and
            # dropping that entry would stop its heartbeat.
            self._inflight.discard(item.job_id, item.run_lease)
            if item.job_id in applied:
                self.applied += 1
                self._metrics.finished.add(
                    1,
                    {
                        "awa.queue": item.queue,
                        "awa.job.kind": item.kind,
                        "awa.outcome": item.decision.outcome,
                    },
                )
            else:
                self.stale += 1
                self._metrics.stale_results.add(1, {"awa.queue": item.queue})
                log.info(
                    "result for job %d (lease %d) was stale: the job moved on",
                    item.job_id,
                    item.run_lease,
                )


def _one_attempt_per_job(items: list[PendingResult]) -> list[list[PendingResult]]:
    """Split one result class into statements that each hold at most one attempt per job.

    The store answers a batch with the job ids it applied. One flush may hold two attempts
    of a job (the first rescued, or lost in a server crash, the second claimed here again);
    which one applied can then not be told from the id, and leases carry no order to pick
    the newer (their low half is random, ADR 040). Rare, so the later attempts of a job
    simply go in a following statement of the same flush."""
    if len({item.job_id for item in items}) == len(items):
        return [items]
    rounds: list[list[PendingResult]] = []
    earlier: dict[int, int] = {}  # job id -> its attempts already placed
    for item in items:
        index = earlier.get(item.job_id, 0)
        earlier[item.job_id] = index + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(item)
    return rounds


def _callback_id(item: PendingResult) -> str:
    assert item.decision.callback_id is not None
    return item.decision.callback_id


def _run_at(item: PendingResult) -> datetime:
    assert item.decision.run_at is not None
    return item.decision.run_at
