"""One flush holding two attempts of the same job (ADR 040).

After a claim a server crash undid, the worker may hold two attempts of one job: the lost
one (its handler still ran) and the lasting one, both of the same lease generation and
differing only in the random low half. When both results land in one flush, the store's
answer (ids applied) must be matched to the right attempt: the lasting one applied, the
lost one was stale. Ordering the two leases by value would pick at random.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import asyncpg
import pytest

import awa
from awa.store import Store
from awa.store.attempts import LEASE_GENERATION_SHIFT, lease_generation
from awa.telemetry import instruments
from awa.worker.completions import CompletionBuffer, PendingResult
from awa.worker.inflight import InFlight, InFlightJob
from awa.worker.outcomes import Decision

LOW_HALF = (1 << LEASE_GENERATION_SHIFT) - 1


async def test_the_lasting_attempt_is_the_one_counted_applied(
    store: Store, raw: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="awa.worker.completions")
    await store.jobs.insert_job(awa.InsertParams("work", {}))
    (claimed,) = await store.jobs.claim_batch("default", ["work"], 1, "runtime-test")
    base = lease_generation(claimed.run_lease) << LEASE_GENERATION_SHIFT
    # Pin the draws so that the lost lease is the larger: a value order would pick it.
    lasting, lost = base | 1, base | LOW_HALF
    await raw.execute("UPDATE awa.jobs SET run_lease = $2 WHERE id = $1", claimed.id, lasting)
    job = replace(claimed, run_lease=lasting)
    inflight = InFlight()
    inflight.add(InFlightJob(job, awa.JobContext(job)))
    buffer = CompletionBuffer(
        store, inflight, awa.SystemClock(), instruments(), flush_interval=60.0, batch=100
    )
    for lease, who in ((lost, "lost"), (lasting, "lasting")):
        done = Decision(awa.JobState.COMPLETED, "completed", result={"by": who})
        buffer.add(PendingResult(job.id, lease, "default", done, kind="work"))
    await buffer.flush()

    assert (buffer.applied, buffer.stale) == (1, 1)
    stale = [r.getMessage() for r in caplog.records if "was stale" in r.getMessage()]
    assert stale == [f"result for job {job.id} (lease {lost}) was stale: the job moved on"]
    assert len(inflight) == 0
    row = await raw.fetchrow("SELECT state, result::text, run_lease FROM awa.all_jobs")
    assert row is not None
    assert (row["state"], row["result"], row["run_lease"]) == (
        "completed",
        '{"by": "lasting"}',
        lasting,
    )
