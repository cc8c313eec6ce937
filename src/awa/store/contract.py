"""The storage contract: what every job store must do, as typed ``Protocol``\\ s.

Why a contract separate from ``Store``: the operations below are the ones the runtime's
guarantees rest on (a job is never lost, a stale result is never applied, only dispatchable
work is claimed). Writing them down as a protocol lets a small pure reference model
(``tests/support/reference_model.py``) implement the same surface, so a property test can run one
random operation sequence against PostgreSQL and the model and compare every job's state.
The docstrings here are the contract; the SQL in ``src/awa/sql`` is one implementation.

Common rules:

- Every method that changes a job takes ``now`` (``None``: the database clock), so time is
  an explicit input and tests can jump it forwards or backwards.
- An *attempt* is a (job id, ``run_lease``) pair. Each claim draws a new ``run_lease``
  (the next generation in its high 32 bits, random low bits: ADR 040); every
  write that ends or extends an attempt (complete, finalize, reschedule, heartbeat, rescue)
  applies only while the job still has that lease and is still in the attempt's state, and
  reports which ids it applied. Anything else is stale: rejected, never applied, and it
  changes nothing.
- A job keeps its id for life, live or finished.

The protocols are split by who calls them (worker hot path, operators and producers, the
maintenance leader); ``JobStoreContract`` is all three. The composed ``Store`` spreads these
operations over its parts (``jobs``, ``admin``, ``maintenance``, ``recovery``) under their
queries' names; ``ContractView`` presents them under the contract's names, and
``_conforms`` makes mypy check that it implements the contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from awa.model import InsertParams, Job, JobState
from awa.store.attempts import FinishedAttempt, Rescheduled
from awa.store.facade import Store
from awa.store.recovery import RescueOutcome

__all__ = [
    "ContractView",
    "DispatchKey",
    "JobStoreContract",
    "LeasedAttempt",
    "MaintenanceContract",
    "OperatorContract",
    "WorkerContract",
    "dispatch_key",
    "list_dispatchable",
]

#: One attempt of one job: (job id, run_lease).
LeasedAttempt = tuple[int, int]

#: Dispatch order within a queue: most urgent priority first, then earliest ``run_at``, then
#: lowest id (insertion order), so equal jobs run first-in first-out.
DispatchKey = tuple[int, datetime, int]


def dispatch_key(job: Job) -> DispatchKey:
    """The key claims sort a queue's available jobs by."""
    return (job.priority, job.run_at, job.id)


class WorkerContract(Protocol):
    """The hot path of a worker: claim, heartbeat, and the three batched result writes."""

    async def claim(
        self,
        queue: str,
        kinds: Sequence[str],
        limit: int,
        instance_id: str,
        now: datetime | None = None,
    ) -> list[Job]:
        """Atomically take up to ``limit`` dispatchable jobs of ``queue`` whose kind is in
        ``kinds``: the first ones in ``dispatch_key`` order among jobs in state ``available``
        (never scheduled, retryable, running or finished ones). Each becomes ``running``
        with ``attempt`` incremented, a new ``run_lease`` one generation above the old
        (``lease_generation``; the low half is the store's random choice), ``attempted_at``
        and ``heartbeat_at`` = now, ``claimed_by`` = ``instance_id`` and ``deadline_at`` = now +
        its timeout (none without one). Concurrent claims never return the same attempt, and
        together take a prefix of the dispatch order. The list's order is not part of the
        contract."""
        ...

    async def heartbeat(
        self,
        job_ids: Sequence[int],
        leases: Sequence[int],
        progress: Sequence[Any],
        now: datetime | None = None,
    ) -> tuple[set[int], dict[int, str | None]]:
        """Refresh ``heartbeat_at`` (and progress: ``None`` keeps, ``CLEAR_PROGRESS``
        clears) of the running attempts given. Returns (ids of which no given attempt is
        still running: the holder must stop them; running ones an operator asked to cancel,
        with the operator's reason)."""
        ...

    async def complete(
        self,
        job_ids: Sequence[int],
        leases: Sequence[int],
        results: Sequence[Any],
        now: datetime | None = None,
        *,
        progress: Sequence[Any] | None = None,
    ) -> set[int]:
        """Finish running attempts as ``completed`` with their results (terminal; success
        wins over an operator's pending cancel request). Returns the ids applied."""
        ...

    async def finalize(
        self, items: Sequence[FinishedAttempt], now: datetime | None = None
    ) -> set[int]:
        """Finish running attempts as ``failed`` or ``cancelled``, appending each error
        record. Returns the ids applied."""
        ...

    async def reschedule(
        self, items: Sequence[Rescheduled], now: datetime | None = None
    ) -> set[int]:
        """Put running attempts back in line: ``retryable`` (a failed attempt) or
        ``scheduled`` (a snooze, which gives the attempt back), at ``run_at``, or
        ``available`` at once when ``run_at`` is not in the future. An attempt an operator
        asked to cancel ends ``cancelled`` with the operator's reason instead. Returns the
        ids applied (either way)."""
        ...


class OperatorContract(Protocol):
    """Producers and operators: insert, read, and the manual transitions."""

    async def insert(self, params: InsertParams, *, now: datetime | None = None) -> Job:
        """Insert one job: ``scheduled`` when ``run_at`` is in the future, else
        ``available`` (``run_at`` defaults to now)."""
        ...

    async def get_job(self, job_id: int) -> Job:
        """One job, live or finished; ``JobNotFound`` when there is none."""
        ...

    async def list_jobs(
        self,
        *,
        state: JobState | None = None,
        queue: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[Job]:
        """Jobs matching the filters, newest (highest id) first, at most ``limit``
        (1..10000), only ids below ``before_id`` when given (for paging)."""
        ...

    async def cancel_job(self, job_id: int, reason: str, now: datetime | None = None) -> Job:
        """A waiting job (scheduled, available, retryable, parked) ends ``cancelled`` at once;
        a running one is flagged so its holder stops it (see ``heartbeat``) and any outcome
        but success ends it ``cancelled``. ``InvalidTransition`` for a finished job,
        ``JobNotFound`` for none. Returns the job afterwards."""
        ...

    async def retry_job(self, job_id: int, now: datetime | None = None) -> Job:
        """Make a scheduled or retryable job available now; bring a finished one back as
        available with its attempts reset (same id and lease). ``InvalidTransition`` for a
        job that is available or running, ``JobNotFound`` for none."""
        ...


class MaintenanceContract(Protocol):
    """What the maintenance leader's SLO lane does to jobs: promote due work, and find and
    rescue attempts whose holder is gone, hung, or past its deadline.

    A rescue is two steps, as the branches run it: *find* (a read) then *rescue* (a guarded
    write of the attempts found). Anything that moved on between the two (completed,
    re-claimed) is left alone, so a rescue racing a result never overwrites it.
    """

    async def promote_due(self, limit: int, now: datetime | None = None) -> list[str]:
        """Make up to ``limit`` scheduled/retryable jobs with ``run_at <= now`` available,
        earliest first. Returns the queue of each promoted job."""
        ...

    async def next_due_at(self) -> datetime | None:
        """The earliest ``run_at`` among scheduled/retryable jobs (None when there are none)."""
        ...

    async def find_rescuable_running(
        self, grace: float, staleness: float, limit: int, now: datetime | None = None
    ) -> tuple[list[LeasedAttempt], list[LeasedAttempt]]:
        """Expired leases, as (orphaned, stale): running attempts claimed more than
        ``grace`` seconds ago whose holder's presence lock is gone; and running attempts
        whose heartbeat is older than ``staleness`` seconds (an attempt that is both is only
        orphaned). At most ``limit``, oldest heartbeat first."""
        ...

    async def find_expired_deadlines(
        self, grace: float, limit: int, now: datetime | None = None
    ) -> list[LeasedAttempt]:
        """Timed-out attempts: running, with a deadline more than ``grace`` seconds past.
        At most ``limit``, earliest deadline first."""
        ...

    async def rescue(
        self,
        pairs: Sequence[LeasedAttempt],
        *,
        from_states: Sequence[str],
        reason: str,
        retry_base_delay: float,
        now: datetime | None = None,
    ) -> RescueOutcome:
        """For each attempt still at the same lease and in one of ``from_states``: with
        attempts left, requeue it (``available`` now when ``retry_base_delay`` is 0, else
        ``retryable`` after ``retry_base_delay`` × 2^(attempt-1) s, capped at an hour, ±10 %
        jitter); with none left, fail it. Either way an error record names ``reason``.
        An attempt an operator asked to cancel ends ``cancelled`` instead (the request wins;
        not counted as a rescue, no ``job.rescued`` event). Returns the counts and the
        queues of the requeued jobs."""
        ...


class JobStoreContract(WorkerContract, OperatorContract, MaintenanceContract, Protocol):
    """The whole contract: what ``ContractView`` (over a ``Store``) and the reference model
    implement."""


async def list_dispatchable(
    store: OperatorContract, queue: str, kinds: Sequence[str], *, page: int = 1000
) -> list[Job]:
    """Every job a claim of ``queue`` for ``kinds`` could take, in the order claims take
    them (``dispatch_key``): the contract's read side of ``claim``. Pages through
    ``list_jobs``, so it is exact however many jobs wait; for inspection and tests, not for
    a hot path."""
    found: list[Job] = []
    before: int | None = None
    while True:
        batch = await store.list_jobs(
            state=JobState.AVAILABLE, queue=queue, limit=page, before_id=before
        )
        found.extend(j for j in batch if j.kind in kinds)
        if len(batch) < page:
            break
        before = batch[-1].id
    return sorted(found, key=dispatch_key)


class ContractView:
    """A ``Store`` seen through the contract: each operation delegates to the part that
    runs it (the store's names are its queries'; the contract's are the operations')."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def claim(
        self,
        queue: str,
        kinds: Sequence[str],
        limit: int,
        instance_id: str,
        now: datetime | None = None,
    ) -> list[Job]:
        return await self.store.jobs.claim_batch(queue, kinds, limit, instance_id, now)

    async def heartbeat(
        self,
        job_ids: Sequence[int],
        leases: Sequence[int],
        progress: Sequence[Any],
        now: datetime | None = None,
    ) -> tuple[set[int], dict[int, str | None]]:
        return await self.store.jobs.heartbeat(job_ids, leases, progress, now)

    async def complete(
        self,
        job_ids: Sequence[int],
        leases: Sequence[int],
        results: Sequence[Any],
        now: datetime | None = None,
        *,
        progress: Sequence[Any] | None = None,
    ) -> set[int]:
        return await self.store.jobs.complete_batch(
            job_ids, leases, results, now, progress=progress
        )

    async def finalize(
        self, items: Sequence[FinishedAttempt], now: datetime | None = None
    ) -> set[int]:
        return await self.store.jobs.finalize_batch(items, now)

    async def reschedule(
        self, items: Sequence[Rescheduled], now: datetime | None = None
    ) -> set[int]:
        return await self.store.jobs.reschedule_batch(items, now)

    async def insert(self, params: InsertParams, *, now: datetime | None = None) -> Job:
        return await self.store.jobs.insert_job(params, now=now)

    async def get_job(self, job_id: int) -> Job:
        return await self.store.admin.get_job(job_id)

    async def list_jobs(
        self,
        *,
        state: JobState | None = None,
        queue: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[Job]:
        return await self.store.admin.list_jobs(
            state=state, queue=queue, kind=kind, limit=limit, before_id=before_id
        )

    async def cancel_job(self, job_id: int, reason: str, now: datetime | None = None) -> Job:
        return await self.store.admin.cancel_job(job_id, reason, now)

    async def retry_job(self, job_id: int, now: datetime | None = None) -> Job:
        return await self.store.admin.retry_job(job_id, now)

    async def promote_due(self, limit: int, now: datetime | None = None) -> list[str]:
        return await self.store.maintenance.promote_due(limit, now)

    async def next_due_at(self) -> datetime | None:
        return await self.store.maintenance.next_due_at()

    async def find_rescuable_running(
        self, grace: float, staleness: float, limit: int, now: datetime | None = None
    ) -> tuple[list[LeasedAttempt], list[LeasedAttempt]]:
        return await self.store.recovery.find_rescuable_running(grace, staleness, limit, now)

    async def find_expired_deadlines(
        self, grace: float, limit: int, now: datetime | None = None
    ) -> list[LeasedAttempt]:
        return await self.store.recovery.find_expired_deadlines(grace, limit, now)

    async def rescue(
        self,
        pairs: Sequence[LeasedAttempt],
        *,
        from_states: Sequence[str],
        reason: str,
        retry_base_delay: float,
        now: datetime | None = None,
    ) -> RescueOutcome:
        return await self.store.recovery.rescue(
            pairs,
            from_states=from_states,
            reason=reason,
            retry_base_delay=retry_base_delay,
            now=now,
        )


# mypy checks this return: the view implements the contract. A signature that drifts from
# the protocol fails ``mypy --strict``, not a test run.


def _conforms(view: ContractView) -> JobStoreContract:
    return view
