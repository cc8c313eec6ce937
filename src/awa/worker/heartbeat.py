"""One heartbeat statement per process per interval, for every job it holds.

Besides proving liveness, the answer carries two signals: jobs whose lease moved on (rescued
elsewhere: stop them, their result would be stale) and jobs an operator asked to cancel.
Progress reported since the last beat is written in the same statement.

Jobs whose result is already with the completion buffer keep their heartbeat until it is
written, but neither signal applies to them: their handler is done, and the row may have left
``running`` because our own flush committed while this beat was in flight. Reporting those as
"taken over elsewhere" would be a false alarm; when one really was rescued, the flush rejects
its result as stale and says so.
"""

from __future__ import annotations

import logging

import anyio
from anyio.abc import TaskStatus

from awa.clock import Clock
from awa.store import CLEAR_PROGRESS, Store
from awa.telemetry import Instruments, instruments
from awa.worker.inflight import InFlight, StopReason
from awa.worker.loop_errors import LoopErrors

__all__ = ["Heartbeat"]

log = logging.getLogger("awa.worker.heartbeat")


class Heartbeat:
    def __init__(
        self,
        store: Store,
        inflight: InFlight,
        clock: Clock,
        interval: float,
        metrics: Instruments | None = None,
    ) -> None:
        self._store = store
        self._inflight = inflight
        self._clock = clock
        self._interval = interval
        self._errors = LoopErrors("heartbeat", clock, metrics or instruments())
        self.beats = 0

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self._clock.sleep(self._interval)
            await self.beat()

    async def beat(self) -> None:
        entries = self._inflight.snapshot()
        if not entries:
            return
        progress: list[object] = []
        for entry in entries:
            changed, value = entry.take_progress()
            if not changed:
                progress.append(None)
            else:
                progress.append(CLEAR_PROGRESS if value is None else value)
        try:
            lost, cancel = await self._store.jobs.heartbeat(
                [e.job.id for e in entries],
                [e.job.run_lease for e in entries],
                progress,
                self._clock.db_now(),
            )
        except Exception as exc:  # every error class: log, count, beat again next interval
            self._errors.record(exc, f"heartbeat for {len(entries)} jobs")
            return
        self._errors.succeeded()
        self.beats += 1
        # Look attempts up in what we beat for, not in the live in-flight set: a newer
        # attempt of the same job may have started since, and must not be stopped.
        by_id = {e.job.id: e for e in entries}
        for job_id in lost:
            held = by_id.get(job_id)
            if held is not None and not held.result_buffered:
                log.warning("job %d was taken over elsewhere; stopping it here", job_id)
                held.stop(StopReason.LOST)
        for job_id, reason in cancel.items():
            held = by_id.get(job_id)
            if held is not None and not held.result_buffered:
                held.stop_detail = reason
                held.stop(StopReason.CANCEL_REQUESTED)
