"""``Store.callbacks``: callbacks (external waits): registration, the batched park, resolution
and retention. SQL and the lock order that keeps these writers deadlock-free:
``src/awa/sql/callbacks.sql``.

A resolution either applies at once (the job is parked) or is recorded on the callback row
for the park flush to apply (the job's handler has not returned yet). Every refusal (unknown
id, wrong token, already resolved, expired) raises a typed error inside the transaction, so
a refused call changes nothing.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from awa.db.connect import RawJson
from awa.db.queries import paired_queries
from awa.errors import (
    CallbackAlreadyResolved,
    CallbackExpired,
    CallbackNotFound,
    CallbackTokenInvalid,
)
from awa.model import hash_callback_token
from awa.store.attempts import progress_param
from awa.store.database import Connection, Database
from awa.store.jobs import Jobs

__all__ = [
    "COMPLETE",
    "FAIL",
    "HEARTBEAT",
    "RETRY",
    "CallbackResolution",
    "Callbacks",
    "ParkedAttempt",
]

COMPLETE: Final = "complete"
FAIL: Final = "fail"
RETRY: Final = "retry"
HEARTBEAT: Final = "heartbeat"

#: Resolution action -> the callback row's state once resolved.
_RESOLVED_STATE: Final = {COMPLETE: "completed", FAIL: "failed", RETRY: "retried"}

#: (resolved state, resume) -> the statements that move a parked job so resolved.
_MOVES: Final = {
    ("completed", False): ("callback_complete_jobs",),
    ("completed", True): ("callback_resume_jobs",),
    ("failed", False): ("callback_fail_jobs",),
    ("failed", True): ("callback_fail_jobs",),
    ("retried", False): ("callback_retry_jobs", "callback_fail_jobs"),
    ("retried", True): ("callback_retry_jobs", "callback_fail_jobs"),
}
_ALL_MOVES: Final = (
    "callback_complete_jobs",
    "callback_resume_jobs",
    "callback_retry_jobs",
    "callback_fail_jobs",
)
#: Moves that leave the job live (its queue is woken, or the leader told when it is due).
_REQUEUING: Final = frozenset({"callback_resume_jobs", "callback_retry_jobs"})

_QUERIES = paired_queries("callbacks")


def _sql(name: str) -> str:
    return _QUERIES[name].sql


@dataclass(frozen=True)
class ParkedAttempt:
    """A running attempt that ended with ``WaitForCallback``: park it on ``callback_id``."""

    job_id: int
    run_lease: int
    callback_id: str
    progress: Any = None  # None keeps the stored progress; CLEAR_PROGRESS clears it


@dataclass(frozen=True)
class CallbackResolution:
    """What an accepted resolution did.

    ``state``: the callback's state now (completed, failed, retried; pending after a
    heartbeat). ``applied``: the job moved at once (it was parked); False means its handler
    had not returned yet and the park will apply the resolution. ``timeout_at``: the
    callback's timeout (the new one after a heartbeat).
    """

    callback_id: str
    job_id: int
    state: str
    applied: bool
    timeout_at: datetime


class Callbacks:
    """External waits; ending or requeueing a parked attempt wakes through ``jobs``."""

    def __init__(self, db: Database, jobs: Jobs) -> None:
        self._db = db
        self._jobs = jobs

    async def register_callback(
        self,
        job_id: int,
        run_lease: int,
        callback_id: uuid.UUID,
        token_hash: bytes,
        timeout: float,
        resume: bool,
        now: datetime | None = None,
    ) -> datetime | None:
        """Record a callback for the running attempt (``JobContext`` calls this); its
        timeout, or None when the attempt no longer holds the job."""

        async def run() -> datetime | None:
            value = await self._db.run.fetchval(
                _sql("register_callback"),
                job_id,
                run_lease,
                callback_id,
                token_hash,
                timeout,
                resume,
                now,
            )
            return value if isinstance(value, datetime) else None

        return await self._db.guard(run)

    async def park_jobs(
        self, items: Sequence[ParkedAttempt], now: datetime | None = None
    ) -> set[int]:
        """Park attempts that returned ``WaitForCallback``, in one transaction for the batch.

        Attempts an operator asked to cancel end cancelled; callbacks resolved before the
        park are applied at once. Returns the ids applied (the rest were stale).
        """
        if not items:
            return set()

        async def run() -> set[int]:
            async with self._db.acquire() as c, c.transaction():
                await c.fetch(_sql("lock_callbacks"), [i.callback_id for i in items])
                rows = await c.fetch(
                    _sql("park_jobs"),
                    [i.job_id for i in items],
                    [i.run_lease for i in items],
                    [i.callback_id for i in items],
                    progress_param([i.progress for i in items]),
                )
                resolved = [int(r["id"]) for r in rows if r["resolved"]]
                applied = await self._jobs.cancel_the_rest(
                    c, items, {int(r["id"]) for r in rows}, now
                )
                if resolved:
                    await self._apply(c, resolved, now, _ALL_MOVES)
                return applied

        return await self._db.guard(run)

    async def resolve_callback(
        self,
        callback_id: uuid.UUID,
        token: str,
        action: str,
        *,
        payload: str | None = None,
        error: str | None = None,
        retry_delay: float | None = None,
        extend_by: float | None = None,
        now: datetime | None = None,
    ) -> CallbackResolution:
        """Resolve (complete, fail, retry) or extend (heartbeat) a callback; ``payload`` is
        validated JSON text.

        Checks, in this order, under the callback's row lock: it exists, the token matches
        (compared in constant time, as hashes), it is still pending, its timeout has not
        passed, and its attempt still waits on it. The first failed check raises and the
        transaction rolls back.
        """
        shown = str(callback_id)

        async def run() -> CallbackResolution:
            async with self._db.acquire() as c, c.transaction():
                row = await c.fetchrow(_sql("lock_callback"), callback_id, now)
                if row is None:
                    raise CallbackNotFound(shown)
                if not hmac.compare_digest(bytes(row["token_hash"]), hash_callback_token(token)):
                    raise CallbackTokenInvalid(shown)
                if row["state"] != "pending":
                    raise CallbackAlreadyResolved(shown, str(row["state"]))
                if row["timeout_at"] <= row["now"]:
                    raise CallbackExpired(shown, "its timeout has passed")
                job_id = int(row["job_id"])
                job_state = await c.fetchval(
                    _sql("lock_callback_job"), job_id, callback_id, row["run_lease"]
                )
                if job_state is None:
                    raise CallbackExpired(shown, "the job no longer waits for it")
                if action == HEARTBEAT:
                    assert extend_by is not None
                    timeout_at = await c.fetchval(
                        _sql("extend_callback"), callback_id, extend_by, now
                    )
                    return CallbackResolution(shown, job_id, "pending", False, timeout_at)
                state = _RESOLVED_STATE[action]
                await c.execute(
                    _sql("resolve_callback"),
                    callback_id,
                    state,
                    None if payload is None else RawJson(payload),
                    error,
                    retry_delay,
                    now,
                )
                parked = job_state == "waiting_external"
                if parked:
                    moves = _MOVES[(state, bool(row["resume"]))]
                    await self._apply(c, [job_id], now, moves)
                return CallbackResolution(shown, job_id, state, parked, row["timeout_at"])

        return await self._db.guard(run)

    async def _apply(
        self, c: Connection, job_ids: list[int], now: datetime | None, moves: Sequence[str]
    ) -> None:
        """Move parked jobs whose callback is resolved and wake whoever must act next: one
        statement per kind of move in ``moves`` (each filters on the callback's state, so a
        batch may run all of them), for the whole batch."""
        moved = []
        for name in moves:
            rows = await c.fetch(_sql(name), job_ids, now)
            if name in _REQUEUING:
                moved.extend(rows)
        await self._jobs.wake_for(c, moved)

    async def prune_callbacks(
        self, older_than: float, batch: int, now: datetime | None = None
    ) -> int:
        """Forget up to ``batch`` callbacks registered more than ``older_than`` seconds ago
        that no live job refers to (their answers are only kept to refuse late duplicates
        precisely). For the hygiene lane's cleanup."""
        value = await self._db.guard(
            lambda: self._db.run.fetchval(_sql("prune_callbacks"), older_than, batch, now)
        )
        return int(value or 0)
