"""``Store.dlq`` (``sql/dlq.sql``): the dead-letter hold (ADR 009): publishing per-queue policies,
the move of failed jobs out of the history ring, retention, and the operator's list / show /
retry / purge.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from awa.db.connect import RawJson
from awa.db.queries import paired_queries
from awa.errors import DeadLetterConflict, DeadLetterNotFound, ValidationError
from awa.model import MAX_QUEUE_LENGTH
from awa.store.database import Connection, Database
from awa.store.jobs import Jobs
from awa.store.rows import errors_column, metadata_column
from awa.validation import to_seconds

__all__ = ["DEFAULT_RETENTION", "DeadLetter", "DeadLetterPolicy", "DeadLetters", "PolicyRow"]

#: How long a dead letter is kept when its policy does not say: 30 days.
DEFAULT_RETENTION = 30 * 86400.0

_QUERIES = paired_queries("dlq")


def _sql(name: str) -> str:
    return _QUERIES[name].sql


@dataclass(frozen=True)
class DeadLetterPolicy:
    """A queue whose failed jobs go to the dead-letter hold, declared in code.

    ``retention``: how long a letter is kept after it entered the hold (seconds or a
    ``timedelta``; default 30 days); ``None`` keeps letters until an operator purges them.
    Validated on construction.
    """

    queue: str
    retention: float | timedelta | None = DEFAULT_RETENTION

    def __post_init__(self) -> None:
        queue = self.queue
        if not isinstance(queue, str) or not queue.strip():
            raise ValidationError("queue", queue, "expected a non-empty string")
        if len(queue) > MAX_QUEUE_LENGTH or "\x00" in queue:
            raise ValidationError(
                "queue", queue, f"at most {MAX_QUEUE_LENGTH} characters, no NUL characters"
            )
        object.__setattr__(self, "retention", to_seconds("retention", self.retention))

    @property
    def retention_s(self) -> float | None:
        return self.retention if isinstance(self.retention, float) else None

    def declaration(self) -> dict[str, Any]:
        """The row ``dlq_upsert_policies`` expects."""
        return {"queue": self.queue, "retention_s": self.retention_s}


@dataclass(frozen=True)
class PolicyRow:
    """A stored policy and how many letters it holds."""

    queue: str
    retention_s: float | None
    declared_at: datetime
    declared_seen_at: datetime
    synced_by: str
    orphaned_at: datetime | None
    pending: int
    retried: int

    def as_dict(self) -> dict[str, Any]:
        return _jsonable(self.__dict__)


@dataclass(frozen=True)
class DeadLetter:
    """A failed job held for an operator. ``id`` is the job's id; ``errors`` is its whole
    error history (one record per failed attempt: at, attempt, kind, message, and type and
    traceback for exceptions); ``reason`` is the last record's message. ``retried_at`` /
    ``retried_job_id`` say that an operator retried it, and as which fresh job."""

    id: int
    kind: str
    queue: str
    args: Any
    priority: int
    original_priority: int
    attempt: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    attempted_at: datetime | None
    finalized_at: datetime
    dead_at: datetime
    reason: str
    errors: list[dict[str, Any]] = field(default_factory=list)
    timeout: float | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    progress: Any = None
    unique_key: str | None = None
    run_lease: int = 0
    claimed_by: str | None = None
    retried_at: datetime | None = None
    retried_job_id: int | None = None

    @property
    def retried(self) -> bool:
        return self.retried_at is not None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (datetimes as ISO 8601) for CLIs and dashboards."""
        return _jsonable(self.__dict__)


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


def _letter(row: Any) -> DeadLetter:
    return DeadLetter(
        id=int(row["id"]),
        kind=row["kind"],
        queue=row["queue"],
        args=row["args"],
        priority=int(row["priority"]),
        original_priority=int(row["original_priority"]),
        attempt=int(row["attempt"]),
        max_attempts=int(row["max_attempts"]),
        run_at=row["run_at"],
        created_at=row["created_at"],
        attempted_at=row["attempted_at"],
        finalized_at=row["finalized_at"],
        dead_at=row["dead_at"],
        reason=row["reason"],
        errors=errors_column(row["errors"]),
        timeout=row["timeout_s"],
        tags=list(row["tags"] or []),
        metadata=metadata_column(row["metadata"]),
        progress=row["progress"],
        unique_key=row["unique_key"],
        run_lease=int(row["run_lease"]),
        claimed_by=row["claimed_by"],
        retried_at=row["retried_at"],
        retried_job_id=None if row["retried_job_id"] is None else int(row["retried_job_id"]),
    )


def _count(status: str) -> int:
    """Rows affected, from a command tag like ``DELETE 12``."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except (ValueError, AttributeError):
        return 0


class DeadLetters:
    """The dead-letter hold; a retry claims its unique key through ``jobs``, as an insert does."""

    def __init__(self, db: Database, jobs: Jobs) -> None:
        self._db = db
        self._jobs = jobs

    # ------------------------------------------------------------ policies

    async def dlq_upsert_policies(
        self, policies: Sequence[DeadLetterPolicy], synced_by: str, now: datetime | None = None
    ) -> None:
        if not policies:
            return
        payload = RawJson(json.dumps([p.declaration() for p in policies]))
        await self._db.guard(
            lambda: self._db.run.execute(_sql("dlq_upsert_policies"), payload, synced_by, now)
        )

    async def dlq_orphan_policies(
        self, declared: Sequence[str], unseen_for: float, now: datetime | None = None
    ) -> list[str]:
        rows = await self._db.guard(
            lambda: self._db.run.fetch(_sql("dlq_orphan_policies"), list(declared), unseen_for, now)
        )
        return [str(r["queue"]) for r in rows]

    async def dlq_list_policies(self) -> list[PolicyRow]:
        rows = await self._db.guard(lambda: self._db.run.fetch(_sql("dlq_list_policies")))
        return [
            PolicyRow(
                queue=r["queue"],
                retention_s=r["retention_s"],
                declared_at=r["declared_at"],
                declared_seen_at=r["declared_seen_at"],
                synced_by=r["synced_by"],
                orphaned_at=r["orphaned_at"],
                pending=int(r["pending"]),
                retried=int(r["retried"]),
            )
            for r in rows
        ]

    # ---------------------------------------------------- maintenance branch

    async def dlq_move(self, limit: int, now: datetime | None = None) -> list[tuple[int, str]]:
        """Move up to ``limit`` failed jobs of policy queues into the hold (one statement);
        returns (job id, queue) of each job moved."""
        rows = await self._db.guard(lambda: self._db.run.fetch(_sql("dlq_move"), limit, now))
        return [(int(r["id"]), str(r["queue"])) for r in rows]

    async def dlq_expire(self, limit: int, now: datetime | None = None) -> int:
        """Delete up to ``limit`` letters held past their queue's retention."""
        status = await self._db.guard(lambda: self._db.run.execute(_sql("dlq_expire"), limit, now))
        return _count(status)

    # --------------------------------------------------------------- operator

    async def dlq_list(
        self,
        *,
        queue: str | None = None,
        kind: str | None = None,
        include_retried: bool = False,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[DeadLetter]:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise ValidationError("limit", limit, "expected 1..10000")
        rows = await self._db.guard(
            lambda: self._db.run.fetch(
                _sql("dlq_list"), queue, kind, include_retried, limit, before_id
            )
        )
        return [_letter(r) for r in rows]

    async def dlq_get(self, letter_id: int) -> DeadLetter:
        row = await self._db.guard(lambda: self._db.run.fetchrow(_sql("dlq_get"), letter_id))
        if row is None:
            raise DeadLetterNotFound(letter_id)
        return _letter(row)

    async def dlq_retry(self, letter_id: int, now: datetime | None = None) -> int:
        """Insert a fresh job (new id, attempt 0) from a pending letter and mark the letter
        retried, in one transaction; returns the new job's id.

        Raises ``DeadLetterNotFound`` (no such letter, or purged meanwhile) or
        ``DeadLetterConflict`` (already retried, or its unique key is held by another job);
        either way nothing changed."""

        async def run() -> int:
            async with self._db.acquire() as c, c.transaction():
                row = await c.fetchrow(_sql("dlq_lock"), letter_id)
                if row is None:
                    raise DeadLetterNotFound(letter_id)
                if row["retried_at"] is not None:
                    retried_as = int(row["retried_job_id"])
                    raise DeadLetterConflict(
                        letter_id, f"it was already retried as job id={retried_as}", retried_as
                    )
                new_id = None
                if row["unique_key"] is not None:
                    new_id = await self._claim_unique_key(c, letter_id, row["unique_key"])
                created = await c.fetchrow(_sql("dlq_retry"), letter_id, new_id, now)
                assert created is not None, "a locked pending letter always yields a job"
                return int(created["id"])

        return await self._db.guard(run)

    async def _claim_unique_key(self, c: Connection, letter_id: int, key: str) -> int:
        """Take the letter's unique key for the fresh job (whose id it returns), as an
        insert would: a key held by a job that still exists refuses the retry."""
        for _ in range(2):
            job_id = await self._jobs.claim_unique_key(c, key)
            if job_id is not None:
                return int(job_id)
            holder = await self._jobs.job_by_unique_key(c, key)
            if holder is not None:
                held_by = int(holder["id"])
                raise DeadLetterConflict(
                    letter_id, f"its unique key {key!r} is held by job id={held_by}", held_by
                )
            await self._jobs.drop_orphan_unique_key(c, key)
        raise DeadLetterConflict(letter_id, f"its unique key {key!r} could not be claimed", None)

    async def dlq_pending_ids(self, queue: str | None, limit: int) -> list[int]:
        rows = await self._db.guard(
            lambda: self._db.run.fetch(_sql("dlq_pending_ids"), queue, limit)
        )
        return [int(r["id"]) for r in rows]

    async def dlq_purge_ids(self, ids: Sequence[int]) -> list[int]:
        rows = await self._db.guard(lambda: self._db.run.fetch(_sql("dlq_purge_ids"), list(ids)))
        return sorted(int(r["id"]) for r in rows)

    async def dlq_purge_exactly(self, ids: Sequence[int]) -> list[int]:
        """Delete the letters ``ids`` all together or none: one transaction that rolls
        back and raises ``DeadLetterNotFound`` (naming the lowest missing id) when any of
        them does not exist. The ids deleted, sorted."""
        wanted = sorted(set(ids))

        async def run() -> list[int]:
            async with self._db.acquire() as c, c.transaction():
                rows = await c.fetch(_sql("dlq_purge_ids"), wanted)
                deleted = sorted(int(r["id"]) for r in rows)
                missing = sorted(set(wanted) - set(deleted))
                if missing:
                    raise DeadLetterNotFound(missing[0])  # rolls the deletes back
                return deleted

        return await self._db.guard(run)

    async def dlq_purge_batch(self, queue: str | None, retried_only: bool, limit: int) -> int:
        status = await self._db.guard(
            lambda: self._db.run.execute(_sql("dlq_purge_batch"), queue, retried_only, limit)
        )
        return _count(status)
