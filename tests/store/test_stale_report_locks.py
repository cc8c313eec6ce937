"""A stale report does not hide a job from claims (lock order in ``src/awa/sql/jobs.sql``).

A runtime reports the outcome of an attempt that has since ended (rescued, retried): the
job may be available again. The statements that end or beat attempts lock their batch
before writing; they used to lock every id they were given, so while such a report's
transaction was open a claim (``SKIP LOCKED``) skipped the available job and came back
short. They lock only rows still at the reported lease now. Each case holds the stale
report's transaction open, on a real server, while another connection claims.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from awa.db.queries import paired_queries
from awa.store import Store

_SQL = paired_queries("jobs")
STALE = 12345  # a lease the job no longer has

#: Each attempt-ending statement, called with one stale (id, lease) pair.
REPORTS: dict[str, Callable[[asyncpg.Connection, int], Awaitable[object]]] = {
    "complete_batch": lambda c, i: c.fetch(
        _SQL["complete_batch"].sql, [i], [STALE], [None], None, None
    ),
    "finalize_batch": lambda c, i: c.fetch(
        _SQL["finalize_batch"].sql, [i], [STALE], ["failed"], [None], None, None
    ),
    "heartbeat": lambda c, i: c.fetch(_SQL["heartbeat"].sql, [i], [STALE], None, None),
}


@pytest.mark.parametrize("statement", sorted(REPORTS))
async def test_a_stale_report_in_flight_does_not_hide_an_available_job(
    database_url: str, store: Store, raw: asyncpg.Connection, statement: str
) -> None:
    job_id = await raw.fetchval(
        "INSERT INTO awa.jobs (kind, queue, args, state, priority, original_priority,"
        " max_attempts, run_at, created_at, tags, metadata, run_lease)"
        " VALUES ('k', 'q', '{}', 'available', 2, 2, 5, now(), now(), '{}', '{}', 7)"
        " RETURNING id"
    )
    reporter = await asyncpg.connect(database_url)
    try:
        async with reporter.transaction():
            await REPORTS[statement](reporter, job_id)
            claimed = await store.jobs.claim_batch("q", ["k"], 1, "claimer")
            assert [j.id for j in claimed] == [job_id]
    finally:
        await reporter.close()
