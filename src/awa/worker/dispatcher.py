"""One dispatcher per queue: claim in batches, run handlers under a concurrency limit.

The loop sleeps until woken (NOTIFY) or its poll timer fires, then claims while there is
free capacity and the queue has work. After a full claim it waits for capacity to come
back, briefly coalescing so the next claim takes several jobs instead of one at a time.

While notifications are trusted the poll is only a backstop for a lost one, so each poll
that finds nothing doubles the next wait, up to ``_IDLE_POLL_CEILING`` (30 s); a claim that
takes jobs restores ``poll_interval``. An idle runtime then costs a claim every 30 s, not
every 5 s (issue 19, ADR 029). Without LISTEN the fast fallback rate is never stretched.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Callable
from datetime import datetime

import anyio
from anyio.abc import TaskGroup, TaskStatus

from awa.backoff import Backoff
from awa.clock import Clock
from awa.config import RuntimeConfig
from awa.errors import RuntimeStateError
from awa.handlers import HandlerRegistry, HandlerSpec, JobContext
from awa.model import InsertParams, Job
from awa.store import Store
from awa.telemetry import Instruments, SpanHandle
from awa.telemetry.logs import JobScope
from awa.worker.attempt import attempt_timeout, invoke, scope_factory
from awa.worker.claim_gate import ClaimGate
from awa.worker.completions import CompletionBuffer, PendingResult
from awa.worker.failure_log import log_failed_attempt
from awa.worker.inflight import InFlight, InFlightJob
from awa.worker.loop_errors import LoopErrors
from awa.worker.loop_monitor import traced
from awa.worker.outcomes import Decision, decide_attempt, refuse, requeue
from awa.worker.wakeups import Wakeups
from awa.worker.work_announcer import WorkAnnouncer

__all__ = ["QueueDispatcher"]

log = logging.getLogger("awa.worker.dispatcher")

_CLAIM_RETRY = Backoff(base=0.1, factor=2.0, cap=5.0, jitter=0.2)
_COALESCE = 0.001
#: Longest backstop poll while LISTEN is trusted and polls keep finding nothing.
_IDLE_POLL_CEILING = 30.0


class QueueDispatcher:
    def __init__(
        self,
        queue: str,
        concurrency: int,
        *,
        store: Store,
        registry: HandlerRegistry,
        inflight: InFlight,
        buffer: CompletionBuffer,
        wakeups: Wakeups,
        clock: Clock,
        config: RuntimeConfig,
        metrics: Instruments,
        gate: ClaimGate | None = None,
        announcer: WorkAnnouncer | None = None,
    ) -> None:
        self.queue = queue
        self.concurrency = concurrency
        self._store = store
        self._registry = registry
        self._kinds = registry.kinds()
        self._inflight = inflight
        self._buffer = buffer
        self._wakeups = wakeups
        self._clock = clock
        self._callbacks = store.callbacks
        self._config = config
        self._metrics = metrics
        self._active = 0
        self._capacity = anyio.Event()
        self._idle = anyio.Event()
        self._idle.set()
        self._stopping = False
        self._claim_errors = LoopErrors(f"claim:{queue}", clock, metrics, _CLAIM_RETRY)
        self._gate = gate or ClaimGate()
        self._announcer = announcer
        self._empty_polls = 0  #: consecutive wake-ups that claimed nothing
        assert config.instance_id is not None, "the runtime gives every config an instance id"
        self._instance_id = config.instance_id
        self.claimed = 0
        self._new_scope: Callable[[], anyio.CancelScope] = anyio.CancelScope  #: see ``run``
        self._ready: deque[Job] = deque()  #: claimed jobs no worker has taken yet
        self._parked: deque[asyncio.Future[None]] = deque()  #: idle workers' wake-ups
        #: Set by ``run``: where handlers run, and the loop they run on (claims at insert).
        self._executions: TaskGroup | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The dispatcher's own context: an insert's task must not inherit the producer's
        #: (its current span, its log scope), as a task the producer started would.
        self._context = contextvars.copy_context()  # replaced by run's
        self._kind_set = frozenset(self._kinds)
        #: Slots a claim statement in flight may fill: not free for an insert to reserve.
        self._claiming = 0
        #: Shutdown's grace ran out: a job an insert claims from now on is given back.
        self._grace_over = False

    @property
    def active(self) -> int:
        return self._active

    def stop(self) -> None:
        """Stop claiming; running handlers are not touched."""
        self._stopping = True
        self._wakeups.notify(self.queue)
        while self._parked:  # idle workers return; busy ones once the ready jobs are run
            waiter = self._parked.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _poll_timeout(self) -> float:
        if self._config.notify and self._wakeups.listening:
            base = self._config.poll_interval
            stretched = base * 2.0 ** min(self._empty_polls, 16)
            return min(stretched, max(base, _IDLE_POLL_CEILING))
        return self._config.poll_interval_without_notify

    async def run(
        self, executions: TaskGroup, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Claim loop; handlers run in ``executions`` so they can outlive claiming."""
        # Every series this queue's attempts will count exists from start (ADR 025).
        declared = [
            kind
            for kind in self._kinds
            if (spec := self._registry.get(kind)) is not None and spec.queue == self.queue
        ]
        self._metrics.declare_queue(self.queue, declared)
        self._new_scope = scope_factory()
        self._executions = executions
        self._loop = asyncio.get_running_loop()
        self._context = contextvars.copy_context()
        task_status.started()
        if not self._kinds:
            return
        while not self._stopping:
            before = self.claimed
            await self._drain(executions)
            self._empty_polls = self._empty_polls + 1 if self.claimed == before else 0
            if self._stopping:
                break
            await self._wakeups.wait(self.queue, self._poll_timeout())

    async def _drain(self, executions: TaskGroup) -> None:
        while not self._stopping:
            free = self.concurrency - self._active
            if free <= 0:
                await self._wait_capacity()
                continue
            if not self._gate.is_open:
                return  # self-fenced: no presence, no claims (the runtime wakes us)
            want = min(free, self._config.claim_batch)
            self._claiming = want
            try:
                jobs = await self._store.jobs.claim_batch(
                    self.queue, self._kinds, want, self._instance_id, self._clock.db_now()
                )
                self._claim_errors.succeeded()
            except Exception as exc:  # every class: log, count, back off, claim again
                await self._claim_errors.failed(exc, f"claim on queue {self.queue!r}")
                return
            finally:
                self._claiming = 0
            if jobs:
                self.claimed += len(jobs)
                self._metrics.claimed.add(len(jobs), {"awa.queue": self.queue})
                if self._announcer is not None:
                    self._announcer.claimed()
            for job in jobs:
                self._take_slot()
                self._hand_out(job, executions)
            if len(jobs) < want:
                return
            await self._wait_capacity()

    async def _wait_capacity(self) -> None:
        """Wait until a slot frees up, then briefly for more so the next claim is a batch."""
        target = max(1, min(self.concurrency, self._config.claim_batch) // 2)
        while self.concurrency - self._active <= 0 and not self._stopping:
            await self._capacity.wait()
            self._capacity = anyio.Event()
        with anyio.move_on_after(_COALESCE):
            while self.concurrency - self._active < target and not self._stopping:
                await self._capacity.wait()
                self._capacity = anyio.Event()

    def _take_slot(self) -> None:
        self._active += 1
        if self._idle.is_set():
            self._idle = anyio.Event()

    def _release(self) -> None:
        self._active -= 1
        self._capacity.set()
        if self._active == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no handler of this queue is running."""
        await self._idle.wait()

    # ------------------------------------------------ claims at insert (ADR 045)

    def reserve(self, kind: str) -> bool:
        """Hold a slot for a job a producer of this process is inserting (``LocalClaims``):
        only while claiming, on this loop, for a kind handled here, with a slot free."""
        if (
            self._stopping
            or self._executions is None
            or self._active + self._claiming >= self.concurrency
            or kind not in self._kind_set
            or not self._gate.is_open
        ):
            return False
        if asyncio.get_running_loop() is not self._loop:
            return False  # a producer on another loop or thread: handlers run here
        self._take_slot()
        return True

    async def insert_reserved(
        self, store: Store, params: InsertParams, now: datetime | None
    ) -> Job:
        """Insert in a task of the executions tier, which hands the job to an execution
        slot when it came back claimed. The producer only awaits the outcome: cancelling
        it neither cancels an insert under way nor strands a job it claimed (the task owns
        both, and the runtime owns the task)."""
        assert self._executions is not None and self._loop is not None, "reserve() said yes"
        outcome: asyncio.Future[Job] = self._loop.create_future()
        try:  # in the producer's context: the insert is its work (its trace, its log scope)
            self._executions.start_soon(self._insert_then_run, store, params, now, outcome)
        except BaseException:
            self._release()
            raise
        return await outcome

    def grace_over(self) -> None:
        """Shutdown's grace period ran out: a job an insert still under way claims is given
        back (``requeued``) instead of run, as the running ones are."""
        self._grace_over = True

    async def _insert_then_run(
        self, store: Store, params: InsertParams, now: datetime | None, outcome: asyncio.Future[Job]
    ) -> None:
        held = True  # the reserved slot, until a claimed job takes it
        try:
            async with store.db.connection() as conn:
                job, claimed = await store.jobs.insert_claiming(
                    params, self._kinds, self._instance_id, conn=conn, now=now
                )
                if claimed is None:  # queued behind others, paused or due later
                    self._release()
                elif self._grace_over:  # shut down meanwhile: requeued like a running job
                    back = requeue(self._clock.now())
                    job_id, lease, kind = claimed.id, claimed.run_lease, claimed.kind
                    self._buffer.add(PendingResult(job_id, lease, self.queue, back, kind=kind))
                    self._release()
                else:
                    # Handed out before the connection goes back to the pool: the handler
                    # starts while the pool's release runs (several loop iterations).
                    assert self._executions is not None
                    self._hand_out(claimed, self._executions)
                held = False
                if not outcome.done():
                    outcome.set_result(job)
                if claimed is not None:
                    self._count_claim_on_insert()
        except Exception as exc:  # the producer's to handle (typed by the store)
            if not outcome.done():
                outcome.set_exception(exc)
            else:  # its producer was cancelled, or had its job and the release failed
                log.warning(
                    "insert into queue %r, its producer gone or answered: %s", self.queue, exc
                )
        except BaseException:  # the runtime was aborted: tell the producer, not cancel it
            if not outcome.done():
                outcome.set_exception(
                    RuntimeStateError(
                        f"runtime {self._instance_id} stopped while inserting into queue "
                        f"{self.queue!r}: the job may have been inserted (rescue then runs it)"
                    )
                )
            raise
        finally:
            if held:  # the insert failed or was cancelled
                self._release()

    def _count_claim_on_insert(self) -> None:
        self.claimed += 1
        self._empty_polls = 0  # the queue has work: back to the short poll
        self._metrics.claimed.add(1, {"awa.queue": self.queue})
        self._metrics.claimed_on_insert.add(1, {"awa.queue": self.queue})
        if self._announcer is not None:
            self._announcer.claimed()

    def _hand_out(self, job: Job, executions: TaskGroup) -> None:
        """Give ``job`` to an idle worker, or start one (at most one per running job)."""
        self._ready.append(job)
        while self._parked:
            waiter = self._parked.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        # A new slot runs in the dispatcher's context, whichever task hands the job out.
        self._context.run(executions.start_soon, self._work)

    async def _work(self) -> None:
        """One execution slot: run ready jobs one after another; park when there is none;
        return once the dispatcher stops (or after a handler left its task cancelled)."""
        task = asyncio.current_task()
        assert task is not None
        loop = task.get_loop()
        while True:
            while self._ready:
                job = self._ready.popleft()
                try:
                    await self._run_handler(job)
                finally:
                    self._release()
                if task.cancelling():
                    return  # a cancel request the handler left on this task: retire it
            if self._stopping:
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._parked.append(waiter)
            await waiter

    async def _run_handler(self, job: Job) -> None:
        spec = self._registry.get(job.kind)
        assert spec is not None, "claims only take kinds this process handles"
        context = JobContext(job, callbacks=self._callbacks, clock=self._clock, codec=spec.codec)
        entry = InFlightJob(job, context, self._new_scope())
        self._inflight.add(entry)
        # run_at may be naive: -infinity written by another producer comes back that way.
        if job.attempted_at is not None and job.run_at.tzinfo is not None:
            latency = max(0.0, (job.attempted_at - job.run_at).total_seconds())
            self._metrics.pickup_latency.record(latency, {"awa.queue": self.queue})
        with (
            JobScope(job),
            self._metrics.job_span(
                kind=job.kind,
                queue=job.queue,
                job_id=job.id,
                attempt=job.attempt,
                metadata=job.metadata,
            ) as span,
        ):
            decision = await self._attempt(entry, spec, span)
            span.set_outcome("lost" if decision is None else decision.outcome)
        if decision is None:
            self._inflight.discard(job.id, job.run_lease)
            self._metrics.finished.add(
                1, {"awa.queue": self.queue, "awa.job.kind": job.kind, "awa.outcome": "lost"}
            )
            return
        self._buffer.add(PendingResult(job.id, job.run_lease, job.queue, decision, kind=job.kind))

    async def _attempt(
        self, entry: InFlightJob, spec: HandlerSpec, span: SpanHandle
    ) -> Decision | None:
        """Run the handler once under its deadline; what to record, or None if lost."""
        job = entry.job
        refused = refuse(job, self._clock.now(), entry.context)
        if refused is not None:  # args/metadata that cannot be read: never run the handler
            log.warning("%s", refused.error["message"] if refused.error else "refused")
            span.record_error("undecodable")
            return refused
        timeout = attempt_timeout(job, spec)
        started = self._clock.monotonic()
        ran = await invoke(
            lambda context: traced(spec.fn(context), job.kind, job.id, own_context=True),
            entry.context,
            timeout=timeout,
            scope=entry.scope,
        )
        self._metrics.handler_duration.record(
            self._clock.monotonic() - started, {"awa.queue": self.queue, "awa.job.kind": job.kind}
        )
        if ran.raised is not None:
            span.record_error(ran.raised)
        elif ran.timed_out:
            span.record_error("timeout")
        decision = decide_attempt(
            entry, ran, self._clock.now, self._config.backoff, self._registry.get(job.kind)
        )
        if decision is not None:
            log_failed_attempt(job, ran, decision, timeout)
        return decision
