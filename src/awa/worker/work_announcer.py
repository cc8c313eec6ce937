"""Telling the maintenance leader that this runtime claimed jobs (``awa_due``, ``work``).

Why: on an idle database the leader's rescue branches (and a few hygiene ones) stretch
their intervals, because checking every second for running jobs that do not exist was most
of what an idle deployment cost (issue 19, ADR 029). Jobs start running only through a
claim, so a claim is the event that must bring those branches back to their cadence: a
runtime that crashes just after claiming is then still rescued in about a second.

At most one announcement per ``min_gap`` (1 s) per runtime, sent by this service task
rather than by the claim statement: the hot claim SQL stays as it is, and a busy runtime
pays one extra tiny transaction a second at most. An announcement that fails is logged and
counted like any loop error (with its backoff before the next one) and not repeated: the
leader's stretched interval (its ceiling) bounds what a lost one costs.
"""

from __future__ import annotations

import math

import anyio
from anyio.abc import TaskStatus

from awa.clock import Clock
from awa.store import Store
from awa.telemetry import Instruments
from awa.worker.loop_errors import LoopErrors

__all__ = ["WorkAnnouncer"]


class WorkAnnouncer:
    def __init__(
        self, store: Store, clock: Clock, metrics: Instruments, *, min_gap: float = 1.0
    ) -> None:
        self._store = store
        self._clock = clock
        self._min_gap = min_gap
        self._pending = anyio.Event()
        self._last = -math.inf
        self._errors = LoopErrors("work_announcer", clock, metrics)
        self.sent = 0  #: announcements made

    def claimed(self) -> None:
        """A claim took jobs: announce it, unless an announcement went out within
        ``min_gap`` (cheap; called on every non-empty claim)."""
        if self._clock.monotonic() - self._last >= self._min_gap:
            self._pending.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self._pending.wait()
            self._pending = anyio.Event()
            self._last = self._clock.monotonic()
            try:
                await self._store.jobs.announce_work()
            except Exception as exc:  # every class: best effort, see the module docstring
                await self._errors.failed(exc, "announcing claimed work to the leader")
            else:
                self._errors.succeeded()
                self.sent += 1
