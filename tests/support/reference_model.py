"""A pure reference model of the storage contract (``awa.store.contract.JobStoreContract``).

A dict of jobs, an explicit clock (every call gets its ``now``), no I/O: each operation is a
few lines of Python stating what the contract says should happen, so that a property test
can run one operation sequence against PostgreSQL and this model and compare every job.
The methods are ``async`` only to satisfy the protocol.

Two things the contract leaves open are made explicit here instead of guessed:

- *Jitter*: a rescue with a retry delay picks ``run_at`` at random within ±10 %. The model
  records the window (``ModelJob.run_at_window``); the test pins the exact value once it has
  checked the store's value lies inside (``settle_run_at``).
- *Racing claims*: two concurrent claims split a prefix of the dispatch order between them
  in an order the contract does not fix; the test checks the prefix property and then
  replays the split with ``claim_exact``.
- *Lease draws*: a claim's new ``run_lease`` is one generation above the old one, with a
  random low half (ADR 040). The model computes the generation and takes the low half the
  store drew (``draw_leases``, given by the test from the store's answer); a drawn lease of
  any other generation is ignored, so the comparison shows the store's mistake.

``Quirks`` switches the model to known current store behaviour the contract says is wrong;
each switch names the strict-xfail test that pins the bug. Fixing the store flips the xfail
test to a failure and, with the quirk still on, the stateful test too: both must be
updated together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from awa.errors import InvalidTransition, JobNotFound, ValidationError
from awa.model import InsertParams, Job, JobState
from awa.store import CLEAR_PROGRESS, FinishedAttempt, Rescheduled
from awa.store.attempts import LEASE_GENERATION_SHIFT, lease_generation
from awa.store.contract import JobStoreContract, LeasedAttempt, dispatch_key
from awa.store.recovery import RescueOutcome

__all__ = ["ModelJob", "Quirks", "ReferenceStore"]

LIVE = frozenset(
    {
        JobState.SCHEDULED,
        JobState.AVAILABLE,
        JobState.RUNNING,
        JobState.WAITING_EXTERNAL,
        JobState.RETRYABLE,
    }
)
WAITING = frozenset(
    {JobState.SCHEDULED, JobState.AVAILABLE, JobState.RETRYABLE, JobState.WAITING_EXTERNAL}
)
ATTEMPT_STATES = frozenset({JobState.RUNNING, JobState.WAITING_EXTERNAL})
DEFERRED = frozenset({JobState.SCHEDULED, JobState.RETRYABLE})
RESCUE_CAP_S = 3600.0
RESCUE_JITTER = 0.1
CANCELLED_WHILE_RUNNING = "cancelled by operator while running"


@dataclass(frozen=True)
class Quirks:
    """Current store behaviour that deviates from the contract (see the module docstring):
    one boolean switch per known bug, default off, each naming its strict-xfail test.

    None today. Retired: ``finalize_ignores_cancel_request`` (a failed last attempt of a
    cancel-requested job ended failed) and ``rescue_ignores_cancel_request`` (a rescue
    requeued or failed an attempt an operator asked to cancel); both stores now end such
    attempts cancelled, as the model always does.
    """


@dataclass
class ModelJob:
    """One job: the columns the contract talks about (live and finished alike)."""

    id: int
    kind: str
    queue: str
    state: JobState
    priority: int
    original_priority: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    timeout: float | None
    attempt: int = 0
    run_lease: int = 0
    attempted_at: datetime | None = None
    finalized_at: datetime | None = None
    heartbeat_at: datetime | None = None
    deadline_at: datetime | None = None
    claimed_by: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    progress: Any = None
    result: Any = None
    cancel_requested: bool = False
    cancel_reason: str | None = None
    #: Set while ``run_at`` is only known to lie in [lo, hi] (a jittered rescue delay).
    run_at_window: tuple[datetime, datetime] | None = None

    def to_job(self) -> Job:
        return Job(
            id=self.id,
            kind=self.kind,
            queue=self.queue,
            args={},
            state=self.state,
            priority=self.priority,
            attempt=self.attempt,
            max_attempts=self.max_attempts,
            run_at=self.run_at,
            created_at=self.created_at,
            attempted_at=self.attempted_at,
            finalized_at=self.finalized_at,
            heartbeat_at=self.heartbeat_at,
            deadline_at=self.deadline_at,
            timeout=self.timeout,
            errors=list(self.errors),
            progress=self.progress,
            run_lease=self.run_lease,
            claimed_by=self.claimed_by,
            result=self.result,
        )


def _progress(stored: Any, given: Any) -> Any:
    """The progress rule: None keeps, CLEAR_PROGRESS clears, anything else replaces."""
    if given is None:
        return stored
    return None if given is CLEAR_PROGRESS else given


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


class ReferenceStore:
    """The contract in plain Python. ``present``: instance ids whose presence lock is held
    (the environment's answer to "is this runtime alive?"); the test keeps it in step with
    the locks it takes and drops on PostgreSQL."""

    def __init__(self, quirks: Quirks | None = None) -> None:
        self.quirks = quirks or Quirks()
        self.jobs: dict[int, ModelJob] = {}
        self.events: list[tuple[int, str]] = []
        self.present: set[str] = set()
        self._next_id = 1
        self._drawn: dict[int, int] = {}

    def draw_leases(self, jobs: Sequence[Job]) -> None:
        """The leases the store drew for these claimed jobs: the model's next claim of each
        takes the drawn lease when it is of the generation the contract says. Replaces the
        draws of an earlier call."""
        self._drawn = {job.id: job.run_lease for job in jobs}

    # ------------------------------------------------------------------ helpers

    def _live(self, job_id: int) -> ModelJob | None:
        job = self.jobs.get(job_id)
        return job if job is not None and job.state in LIVE else None

    def _holds(self, job_id: int, lease: int, states: frozenset[JobState]) -> ModelJob | None:
        job = self._live(job_id)
        if job is None or job.run_lease != lease or job.state not in states:
            return None
        return job

    def _finish(self, job: ModelJob, state: JobState, now: datetime, progress: Any = None) -> None:
        job.state = state
        job.finalized_at = now
        job.heartbeat_at = None
        job.deadline_at = None
        job.cancel_requested = False
        job.cancel_reason = None
        job.progress = _progress(job.progress, progress)

    def _cancel_requested_attempt(self, job: ModelJob, now: datetime, progress: Any) -> None:
        """An attempt an operator asked to cancel ends cancelled with the operator's reason."""
        job.errors.append(
            {
                "kind": "cancelled",
                "attempt": job.attempt,
                "message": job.cancel_reason or CANCELLED_WHILE_RUNNING,
            }
        )
        job.result = None
        self._finish(job, JobState.CANCELLED, now, progress)

    def settle_run_at(self, job_id: int, run_at: datetime) -> None:
        """Pin a jittered ``run_at`` to the value observed (the caller checked the window)."""
        job = self.jobs[job_id]
        job.run_at = run_at
        job.run_at_window = None

    def _due(self, job: ModelJob, now: datetime) -> bool:
        if job.run_at_window is not None:
            lo, hi = job.run_at_window
            if lo <= now < hi:
                raise AssertionError(f"job {job.id}: due-ness undecided inside jitter window")
        return job.run_at <= now

    # ------------------------------------------------------------ worker path

    async def claim(
        self,
        queue: str,
        kinds: Sequence[str],
        limit: int,
        instance_id: str,
        now: datetime | None = None,
    ) -> list[Job]:
        assert now is not None, "the model has no clock of its own"
        candidates = [
            j
            for j in self.jobs.values()
            if j.state is JobState.AVAILABLE and j.queue == queue and j.kind in kinds
        ]
        candidates.sort(key=lambda j: dispatch_key(j.to_job()))
        return self.claim_exact([j.id for j in candidates[:limit]], instance_id, now)

    def claim_exact(self, ids: Sequence[int], instance_id: str, now: datetime) -> list[Job]:
        """Claim exactly these available jobs (replaying a race the contract leaves open)."""
        claimed = []
        for job_id in ids:
            job = self.jobs[job_id]
            assert job.state is JobState.AVAILABLE, f"job {job_id} is {job.state}"
            job.state = JobState.RUNNING
            job.attempt += 1
            job.run_lease = self._next_lease(job)
            job.attempted_at = now
            job.heartbeat_at = now
            job.claimed_by = instance_id
            job.deadline_at = None if job.timeout is None else now + _seconds(job.timeout)
            claimed.append(job.to_job())
        return claimed

    def _next_lease(self, job: ModelJob) -> int:
        generation = lease_generation(job.run_lease) + 1
        drawn = self._drawn.pop(job.id, None)
        if drawn is not None and lease_generation(drawn) == generation:
            return drawn
        return generation << LEASE_GENERATION_SHIFT

    async def heartbeat(
        self,
        job_ids: Sequence[int],
        leases: Sequence[int],
        progress: Sequence[Any],
        now: datetime | None = None,
    ) -> tuple[set[int], dict[int, str | None]]:
        assert now is not None
        beaten: set[int] = set()
        for job_id, lease, value in zip(job_ids, leases, progress, strict=True):
            job = self._holds(job_id, lease, frozenset({JobState.RUNNING}))
            if job is not None:
                job.heartbeat_at = now
                job.progress = _progress(job.progress, value)
                beaten.add(job_id)
        lost = set(job_ids) - beaten
        cancel = {i: self.jobs[i].cancel_reason for i in beaten if self.jobs[i].cancel_requested}
        return lost, cancel

    async def complete(
        self,
        job_ids: Sequence[int],
        leases: Sequence[int],
        results: Sequence[Any],
        now: datetime | None = None,
        *,
        progress: Sequence[Any] | None = None,
    ) -> set[int]:
        assert now is not None
        values = list(progress) if progress is not None else [None] * len(job_ids)
        applied: set[int] = set()
        for job_id, lease, result, value in zip(job_ids, leases, results, values, strict=True):
            job = self._holds(job_id, lease, frozenset({JobState.RUNNING}))
            if job is not None:
                job.result = result
                self._finish(job, JobState.COMPLETED, now, value)
                applied.add(job_id)
        return applied

    async def finalize(
        self, items: Sequence[FinishedAttempt], now: datetime | None = None
    ) -> set[int]:
        assert now is not None
        applied: set[int] = set()
        for item in items:
            job = self._holds(item.job_id, item.run_lease, ATTEMPT_STATES)
            if job is None:
                continue
            applied.add(item.job_id)
            if job.cancel_requested and item.state is JobState.FAILED:
                self._cancel_requested_attempt(job, now, item.progress)
                continue
            if item.error is not None:
                job.errors.append(item.error)
            job.result = None
            self._finish(job, item.state, now, item.progress)
            if item.state is JobState.FAILED:
                self.events.append((job.id, "job.failed"))
        return applied

    async def reschedule(
        self, items: Sequence[Rescheduled], now: datetime | None = None
    ) -> set[int]:
        assert now is not None
        applied: set[int] = set()
        for item in items:
            job = self._holds(item.job_id, item.run_lease, ATTEMPT_STATES)
            if job is None or job.cancel_requested:
                continue
            job.state = JobState.AVAILABLE if item.run_at <= now else item.state
            job.run_at = item.run_at
            job.run_at_window = None
            if item.give_back_attempt:
                job.attempt -= 1
            if item.error is not None:
                job.errors.append(item.error)
            job.progress = _progress(job.progress, item.progress)
            job.heartbeat_at = job.deadline_at = job.claimed_by = None
            job.cancel_requested = False
            applied.add(item.job_id)
        for item in items:
            if item.job_id in applied:
                continue
            job = self._holds(item.job_id, item.run_lease, ATTEMPT_STATES)
            if job is not None and job.cancel_requested:
                self._cancel_requested_attempt(job, now, item.progress)
                applied.add(item.job_id)
        return applied

    # ---------------------------------------------------------- operators

    async def insert(self, params: InsertParams, *, now: datetime | None = None) -> Job:
        assert now is not None
        assert params.unique_key is None, "the model does not cover unique keys"
        run_at = params.run_at or now
        job = ModelJob(
            id=self._next_id,
            kind=params.kind,
            queue=params.queue,
            state=JobState.SCHEDULED if run_at > now else JobState.AVAILABLE,
            priority=params.priority,
            original_priority=params.priority,
            max_attempts=params.max_attempts,
            run_at=run_at,
            created_at=now,
            timeout=params.timeout_seconds,
        )
        self._next_id += 1
        self.jobs[job.id] = job
        return job.to_job()

    async def get_job(self, job_id: int) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job.to_job()

    async def list_jobs(
        self,
        *,
        state: JobState | None = None,
        queue: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[Job]:
        if not 1 <= limit <= 10_000:
            raise ValidationError("limit", limit, "expected 1..10000")
        chosen = [
            j
            for j in self.jobs.values()
            if (state is None or j.state is state)
            and (queue is None or j.queue == queue)
            and (kind is None or j.kind == kind)
            and (before_id is None or j.id < before_id)
        ]
        chosen.sort(key=lambda j: j.id, reverse=True)
        return [j.to_job() for j in chosen[:limit]]

    async def cancel_job(self, job_id: int, reason: str, now: datetime | None = None) -> Job:
        assert now is not None
        job = self.jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        if job.state in WAITING:
            job.errors.append({"kind": "cancelled", "attempt": job.attempt, "message": reason})
            job.result = None
            self._finish(job, JobState.CANCELLED, now)
        elif job.state is JobState.RUNNING:
            job.cancel_requested = True
            job.cancel_reason = reason
        else:
            raise InvalidTransition(job_id, job.state.value, "cancel")
        return job.to_job()

    async def retry_job(self, job_id: int, now: datetime | None = None) -> Job:
        assert now is not None
        job = self.jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        if job.state in DEFERRED:
            job.state = JobState.AVAILABLE
            job.run_at = now
            job.run_at_window = None
        elif job.state in LIVE:
            raise InvalidTransition(job_id, job.state.value, "retry")
        else:
            self.jobs[job_id] = replace(
                job,
                state=JobState.AVAILABLE,
                priority=job.original_priority,
                attempt=0,
                run_at=now,
                attempted_at=None,
                finalized_at=None,
                claimed_by=None,
                progress=None,
                result=None,
                errors=list(job.errors),
            )
        return self.jobs[job_id].to_job()

    # ------------------------------------------------------------ maintenance

    async def promote_due(self, limit: int, now: datetime | None = None) -> list[str]:
        assert now is not None
        due = [j for j in self.jobs.values() if j.state in DEFERRED and self._due(j, now)]
        due.sort(key=lambda j: j.run_at)
        if len(due) > limit:
            assert due[limit - 1].run_at != due[limit].run_at, "tie at the limit: ambiguous"
        for job in due[:limit]:
            job.state = JobState.AVAILABLE
        return [j.queue for j in due[:limit]]

    async def next_due_at(self) -> datetime | None:
        deferred = [j for j in self.jobs.values() if j.state in DEFERRED]
        for job in deferred:
            assert job.run_at_window is None, f"job {job.id}: run_at not settled"
        return min((j.run_at for j in deferred), default=None)

    async def find_rescuable_running(
        self, grace: float, staleness: float, limit: int, now: datetime | None = None
    ) -> tuple[list[LeasedAttempt], list[LeasedAttempt]]:
        assert now is not None
        rows: list[tuple[ModelJob, bool]] = []
        for job in self.jobs.values():
            if job.state is not JobState.RUNNING:
                continue
            assert job.attempted_at is not None and job.heartbeat_at is not None
            orphaned = (
                job.attempted_at < now - _seconds(grace) and job.claimed_by not in self.present
            )
            stale = job.heartbeat_at < now - _seconds(staleness)
            if orphaned or stale:
                rows.append((job, orphaned))
        rows.sort(key=lambda row: _heartbeat(row[0]))
        if len(rows) > limit:
            assert _heartbeat(rows[limit - 1][0]) != _heartbeat(rows[limit][0]), "ambiguous"
        rows = rows[:limit]
        orphans = [(j.id, j.run_lease) for j, orphaned in rows if orphaned]
        stale_only = [(j.id, j.run_lease) for j, orphaned in rows if not orphaned]
        return orphans, stale_only

    async def find_expired_deadlines(
        self, grace: float, limit: int, now: datetime | None = None
    ) -> list[LeasedAttempt]:
        assert now is not None
        expired = [
            j
            for j in self.jobs.values()
            if j.state is JobState.RUNNING
            and j.deadline_at is not None
            and j.deadline_at < now - _seconds(grace)
        ]
        expired.sort(key=_deadline)
        if len(expired) > limit:
            assert _deadline(expired[limit - 1]) != _deadline(expired[limit]), "ambiguous"
        return [(j.id, j.run_lease) for j in expired[:limit]]

    async def rescue(
        self,
        pairs: Sequence[LeasedAttempt],
        *,
        from_states: Sequence[str],
        reason: str,
        retry_base_delay: float,
        now: datetime | None = None,
    ) -> RescueOutcome:
        """An attempt an operator asked to cancel ends cancelled (the operator's reason, no
        rescue error record, no ``job.rescued`` event, counted only as ``cancelled``): its
        holder is gone, and the request wins over a retry or a failure exactly as when a
        holder reports its outcome. The rest are requeued or failed, each with a rescue
        error record and a ``job.rescued`` event (plus ``job.failed`` when failed)."""
        assert now is not None
        states = frozenset(JobState(s) for s in from_states)
        retried = failed = cancelled = 0
        queues: set[str] = set()
        for job_id, lease in dict.fromkeys(pairs):
            job = self._holds(job_id, lease, states)
            if job is None:
                continue
            if job.cancel_requested:
                self._cancel_requested_attempt(job, now, None)
                cancelled += 1
                continue
            job.errors.append(
                {
                    "kind": "rescued",
                    "attempt": job.attempt,
                    "message": reason,
                    "claimed_by": job.claimed_by,
                }
            )
            self.events.append((job.id, "job.rescued"))
            if job.attempt >= job.max_attempts:
                job.result = None
                self._finish(job, JobState.FAILED, now)
                self.events.append((job.id, "job.failed"))
                failed += 1
                continue
            _requeue(job, now, retry_base_delay)
            retried += 1
            queues.add(job.queue)
        return RescueOutcome(retried, failed, frozenset(queues), cancelled)


def _requeue(job: ModelJob, now: datetime, base: float) -> None:
    if base == 0:
        job.state = JobState.AVAILABLE
        job.run_at = now
        job.run_at_window = None
    else:
        delay = min(RESCUE_CAP_S, base * 2 ** max(job.attempt - 1, 0))
        job.state = JobState.RETRYABLE
        job.run_at = now + _seconds(delay)
        job.run_at_window = (
            now + _seconds(delay * (1 - RESCUE_JITTER)),
            now + _seconds(delay * (1 + RESCUE_JITTER)),
        )
    job.heartbeat_at = job.deadline_at = job.claimed_by = None
    job.cancel_requested = False


def _heartbeat(job: ModelJob) -> datetime:
    assert job.heartbeat_at is not None
    return job.heartbeat_at


def _deadline(job: ModelJob) -> datetime:
    assert job.deadline_at is not None
    return job.deadline_at


def _conforms(model: ReferenceStore) -> JobStoreContract:
    """mypy checks this return: the model implements the whole contract."""
    return model
