"""The dead-letter hold: per-queue policies declared in code, and the operator's API.

An application declares which queues keep their failed jobs for an operator::

    client.dlq.declare("emails", retention=timedelta(days=14))

The maintenance leader's ``dead_letter`` branch publishes the declarations, moves ``failed``
jobs of those queues out of the terminal-history ring into ``awa.dead_letters`` (whole rows,
full error history) and deletes letters past their retention. Operators then list, inspect,
retry (a fresh job: new id, attempt 0, same kind/args/queue) and purge them, from here or
with ``awa dlq``. Design and guarantees: ADR 009.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from awa.clock import Clock
from awa.errors import DeadLetterConflict, DeadLetterNotFound, ValidationError
from awa.model import Job
from awa.store import Store
from awa.store.dlq import (
    DEFAULT_RETENTION,
    DeadLetter,
    DeadLetterPolicy,
    PolicyRow,
)

__all__ = [
    "DEFAULT_RETENTION",
    "DeadLetter",
    "DeadLetterPolicies",
    "DeadLetterPolicy",
    "DeadLetters",
    "PolicyRow",
    "RetryOutcome",
]

#: Letters deleted per statement by a purge (a big purge is many short transactions).
PURGE_BATCH = 1000


class DeadLetterPolicies:
    """The policies one application declares, by queue (one policy per queue)."""

    def __init__(self) -> None:
        self._by_queue: dict[str, DeadLetterPolicy] = {}

    def add(
        self, queue: str, *, retention: float | timedelta | None = DEFAULT_RETENTION
    ) -> DeadLetterPolicy:
        policy = DeadLetterPolicy(queue, retention)
        if queue in self._by_queue:
            raise ValidationError("queue", queue, "a dead-letter policy for it already exists")
        self._by_queue[queue] = policy
        return policy

    def __iter__(self) -> Iterator[DeadLetterPolicy]:
        return iter(list(self._by_queue.values()))

    def __len__(self) -> int:
        return len(self._by_queue)

    def __contains__(self, queue: object) -> bool:
        return queue in self._by_queue


@dataclass(frozen=True)
class RetryOutcome:
    """One letter of a bulk retry: the fresh job's id, or why it was refused."""

    dead_letter_id: int
    job_id: int | None
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"dead_letter_id": self.dead_letter_id, "job_id": self.job_id, "error": self.error}


class DeadLetterHost(Protocol):
    """What ``DeadLetters`` needs from its owner (an ``awa.Client``)."""

    clock: Clock

    @property
    def store(self) -> Store: ...


def _check_id(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(name, value, "expected a positive integer id")
    return value


class DeadLetters:
    """Declare dead-letter policies and operate the hold (``client.dlq``).

    Declaring needs no connection; every other method uses the owner's pool and clock.
    """

    def __init__(self, host: DeadLetterHost) -> None:
        self._host = host
        #: Declared in code, published by runtimes and the ``dead_letter`` branch.
        self.policies = DeadLetterPolicies()

    @property
    def _store(self) -> Store:
        return self._host.store

    # ------------------------------------------------------------- policies

    def declare(
        self, queue: str, *, retention: float | timedelta | None = DEFAULT_RETENTION
    ) -> DeadLetterPolicy:
        """Keep ``queue``'s failed jobs in the hold for ``retention`` (seconds or a
        timedelta, default 30 days; ``None``: until purged). Validated now; published to
        the database at runtime start and by the maintenance leader."""
        return self.policies.add(queue, retention=retention)

    async def publish(self, synced_by: str) -> None:
        """Publish the declared policies now (a runtime does this at start)."""
        await self._store.dlq.dlq_upsert_policies(
            list(self.policies), synced_by, self._host.clock.db_now()
        )

    async def list_policies(self) -> list[PolicyRow]:
        """Every stored policy (declared by any process) with its pending/retried counts."""
        return await self._store.dlq.dlq_list_policies()

    # ------------------------------------------------------------- letters

    async def list_letters(
        self,
        *,
        queue: str | None = None,
        kind: str | None = None,
        include_retried: bool = False,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[DeadLetter]:
        """Letters newest first; pending ones only unless ``include_retried``. Page with
        ``before_id`` (the last id of the previous page)."""
        return await self._store.dlq.dlq_list(
            queue=queue,
            kind=kind,
            include_retried=include_retried,
            limit=limit,
            before_id=before_id,
        )

    async def get(self, dead_letter_id: int) -> DeadLetter:
        """One letter with its full error history; ``DeadLetterNotFound`` if there is none."""
        return await self._store.dlq.dlq_get(_check_id("dead_letter_id", dead_letter_id))

    async def retry(self, dead_letter_id: int) -> Job:
        """Run a dead letter again as a fresh job (new id, attempt 0, no error history, the
        letter's kind, args, queue, original priority, tags, timeout and unique key; its
        metadata gains ``{"awa.dead_letter": {"retried_from": id}}``). The letter is kept,
        marked retried, until retention or a purge. One transaction: the job exists if and
        only if the letter is marked. Returns the fresh job as read right after the commit (a
        runtime may already have claimed it). Raises ``DeadLetterNotFound``, or
        ``DeadLetterConflict`` when it was already retried or its unique key is held by
        another job; then nothing changed."""
        store = self._store
        job_id = await store.dlq.dlq_retry(
            _check_id("dead_letter_id", dead_letter_id), self._host.clock.db_now()
        )
        return await store.admin.get_job(job_id)

    async def retry_many(self, dead_letter_ids: Sequence[int]) -> list[RetryOutcome]:
        """Retry each letter in its own transaction; a refused one does not stop the rest."""
        ids = [_check_id("dead_letter_ids", i) for i in dead_letter_ids]
        store = self._store
        outcomes = []
        for letter_id in ids:
            try:
                job_id = await store.dlq.dlq_retry(letter_id, self._host.clock.db_now())
            except (DeadLetterNotFound, DeadLetterConflict) as exc:
                outcomes.append(RetryOutcome(letter_id, None, str(exc)))
            else:
                outcomes.append(RetryOutcome(letter_id, job_id))
        return outcomes

    async def retry_all(self, *, queue: str | None = None, limit: int = 1000) -> list[RetryOutcome]:
        """Retry up to ``limit`` pending letters (of ``queue``, or of every queue), oldest
        first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
            raise ValidationError("limit", limit, "expected 1..100000")
        ids = await self._store.dlq.dlq_pending_ids(queue, limit)
        return await self.retry_many(ids)

    async def purge(
        self,
        dead_letter_ids: Sequence[int] = (),
        *,
        queue: str | None = None,
        everything: bool = False,
        retried_only: bool = False,
    ) -> int:
        """Delete letters for good and return how many: the given ids, or every letter of
        ``queue``, or every letter (``everything=True``); ``retried_only`` narrows the last
        two to letters already retried. Large purges run in batches of ``PURGE_BATCH``."""
        ids = [_check_id("dead_letter_ids", i) for i in dead_letter_ids]
        chosen = sum((bool(ids), queue is not None, everything))
        if chosen != 1:
            raise ValidationError(
                "purge",
                {"ids": ids, "queue": queue, "everything": everything},
                "give exactly one of: ids, queue, everything=True",
            )
        store = self._store
        if ids:
            if retried_only:
                raise ValidationError("retried_only", True, "applies to queue or everything")
            return len(await store.dlq.dlq_purge_ids(ids))
        total = 0
        while True:
            deleted = await store.dlq.dlq_purge_batch(queue, retried_only, PURGE_BATCH)
            total += deleted
            if deleted < PURGE_BATCH:
                return total
