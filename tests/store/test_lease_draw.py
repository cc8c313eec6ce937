"""The run_lease a claim draws (ADR 040): the next generation, and never the lease of a
claim that did not last.

A claim commits asynchronously, so a server crash may undo it while its handler runs on.
A rolled-back claim is the same thing without the crash: the row is back as it was, and the
next claim must not hand out the lease the undone one gave. (The crash itself:
tests/chaos/test_claim_crash.py.)
"""

from __future__ import annotations

import asyncpg

from awa.db.queries import sql_text
from awa.model import InsertParams
from awa.store import Store
from awa.store.attempts import lease_generation

ROUNDS = 20


async def claim_undone(raw: asyncpg.Connection) -> int:
    """Claim the job in a transaction that never commits; the lease it handed out."""
    tx = raw.transaction()
    await tx.start()
    try:
        rows = await raw.fetch(sql_text("claim_batch"), "default", ["k"], 1, "lost", None)
    finally:
        await tx.rollback()
    assert len(rows) == 1
    return int(rows[0]["run_lease"])


async def test_a_claim_after_an_undone_one_draws_another_lease(
    store: Store, raw: asyncpg.Connection
) -> None:
    job = await store.jobs.insert_job(InsertParams("k", {}))
    lost = [await claim_undone(raw) for _ in range(ROUNDS)]
    (claimed,) = await store.jobs.claim_batch("default", ["k"], 1, "second")
    assert claimed.id == job.id
    # same generation (one durable claim before), never the same lease
    assert {lease_generation(lease) for lease in lost} == {1}
    assert lease_generation(claimed.run_lease) == 1
    assert claimed.run_lease not in lost
    assert len(set(lost)) == ROUNDS
    # the undone claim's holder is fenced out; the lasting one is not
    assert await store.jobs.complete_batch([job.id], [lost[0]], [None]) == set()
    assert await store.jobs.complete_batch([job.id], [claimed.run_lease], [None]) == {job.id}


async def test_each_claim_is_one_generation_up_and_positive(
    store: Store, raw: asyncpg.Connection
) -> None:
    job = await store.jobs.insert_job(InsertParams("k", {}, max_attempts=10))
    for generation in range(1, 4):
        (claimed,) = await store.jobs.claim_batch("default", ["k"], 1, "w")
        assert lease_generation(claimed.run_lease) == generation
        assert 0 < claimed.run_lease < 2**63
        await raw.execute("UPDATE awa.jobs SET state = 'available' WHERE id = $1", job.id)


async def test_a_lease_near_the_top_stays_in_range(store: Store, raw: asyncpg.Connection) -> None:
    """The last generation a bigint holds: the claim after it still yields a positive
    lease (a job claimed 2^31 - 2 times before is not a case anyone meets, but the
    arithmetic must not wrap)."""
    job = await store.jobs.insert_job(InsertParams("k", {}))
    top = (2**31 - 2) << 32
    await raw.execute("UPDATE awa.jobs SET run_lease = $2 WHERE id = $1", job.id, top)
    (claimed,) = await store.jobs.claim_batch("default", ["k"], 1, "w")
    assert lease_generation(claimed.run_lease) == 2**31 - 1
    assert 0 < claimed.run_lease < 2**63
