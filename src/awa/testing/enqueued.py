"""``enqueued_jobs``, ``assert_enqueued``, ``refute_enqueued``: what is in the database.

Why read the real database: "my view enqueues a welcome email" is a claim about a row, and
the row is what a worker will claim; a mock of ``insert`` would pass for a job that the
database refused or a transaction rolled back. Pass a connected ``Client``, or your own
connection inside an open transaction (its uncommitted inserts are seen).

"Enqueued" means waiting to run by default: ``scheduled``, ``available`` or ``retryable``.
``state=`` takes a state, several, or ``None`` for any (running and finished jobs included).
``args`` matches by containment (``args @> ...``): ``{"to": "a@example.com"}`` matches a job
whose args hold that key and value among others.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from awa.client import Client
from awa.model import Job, JobState, parse_state
from awa.store import Connection
from awa.store.admin import find_jobs
from awa.validation import encode_json

__all__ = ["QUEUED_STATES", "assert_enqueued", "enqueued_jobs", "refute_enqueued"]

#: The states ``enqueued_jobs`` looks at unless told otherwise: waiting to run.
QUEUED_STATES: tuple[JobState, ...] = (JobState.SCHEDULED, JobState.AVAILABLE, JobState.RETRYABLE)

#: Jobs an assertion message lists before it says how many more there are.
_LISTED = 20

States = JobState | str | Iterable[JobState | str] | None


def _states(state: States) -> list[str] | None:
    if state is None:
        return None
    if isinstance(state, str):  # a JobState is a str too
        return [parse_state(state).value]
    return [parse_state(s).value for s in state]


async def enqueued_jobs(
    source: Client | Connection,
    *,
    kind: str | None = None,
    queue: str | None = None,
    args: Any = None,
    state: States = QUEUED_STATES,
) -> list[Job]:
    """Jobs in ``state`` (default: waiting to run) matching every filter given, oldest
    first. ``source``: a connected client, or a connection (your open transaction)."""
    wanted = _states(state)
    args_json = None if args is None else encode_json("args", args)
    if isinstance(source, Client):
        db = source.store.db

        async def read() -> list[Job]:
            async with db.acquire() as conn:
                return await find_jobs(
                    conn, states=wanted, kind=kind, queue=queue, args_json=args_json
                )

        return await db.guard(read)
    return await find_jobs(source, states=wanted, kind=kind, queue=queue, args_json=args_json)


async def assert_enqueued(
    source: Client | Connection,
    *,
    kind: str | None = None,
    queue: str | None = None,
    args: Any = None,
    state: States = QUEUED_STATES,
    count: int | None = None,
) -> list[Job]:
    """Assert at least one job matches (exactly ``count`` when given); return the matches.
    The ``AssertionError`` lists the jobs that *are* in those states."""
    found = await enqueued_jobs(source, kind=kind, queue=queue, args=args, state=state)
    if (count is None and found) or (count is not None and len(found) == count):
        return found
    wanted = "at least one job" if count is None else f"exactly {count} job(s)"
    present = await enqueued_jobs(source, state=state)
    raise AssertionError(
        f"expected {wanted} matching {_describe(kind, queue, args, state)}, found {len(found)}"
        f"{_listing(found, 'matching') if found else ''}{_listing(present, 'in those states')}"
    )


async def refute_enqueued(
    source: Client | Connection,
    *,
    kind: str | None = None,
    queue: str | None = None,
    args: Any = None,
    state: States = QUEUED_STATES,
) -> None:
    """Assert no job matches; the ``AssertionError`` lists the ones that do."""
    found = await enqueued_jobs(source, kind=kind, queue=queue, args=args, state=state)
    if found:
        raise AssertionError(
            f"expected no job matching {_describe(kind, queue, args, state)}, "
            f"found {len(found)}{_listing(found, 'matching')}"
        )


def _describe(kind: str | None, queue: str | None, args: Any, state: States) -> str:
    parts = []
    if kind is not None:
        parts.append(f"kind={kind!r}")
    if queue is not None:
        parts.append(f"queue={queue!r}")
    if args is not None:
        parts.append(f"args containing {json.dumps(args, sort_keys=True, default=repr)}")
    states = _states(state)
    parts.append("any state" if states is None else f"state in ({', '.join(states)})")
    return ", ".join(parts)


def _listing(jobs: list[Job], what: str) -> str:
    if not jobs:
        return f"\njobs {what}: none"
    lines = [f"\njobs {what} ({len(jobs)}):"]
    for job in jobs[:_LISTED]:
        shown = json.dumps(job.args, sort_keys=True, default=repr)
        lines.append(
            f"  #{job.id} kind={job.kind!r} queue={job.queue!r} state={job.state.value} "
            f"args={shown}"
        )
    if len(jobs) > _LISTED:
        lines.append(f"  ... and {len(jobs) - _LISTED} more")
    return "\n".join(lines)
