from datetime import UTC, datetime, timedelta

from awa.model import InsertParams, JobState
from awa.store import FinishedAttempt, Rescheduled, Store
from awa.store.attempts import lease_generation


async def test_insert_claim_complete_roundtrip(store: Store) -> None:
    job = await store.jobs.insert_job(InsertParams("email", {"to": "a@b"}))
    assert job.state is JobState.AVAILABLE
    claimed = await store.jobs.claim_batch("default", ["email"], 10, "inst-1")
    assert [j.id for j in claimed] == [job.id]
    lease = claimed[0].run_lease
    assert lease_generation(lease) == 1 and claimed[0].attempt == 1
    assert await store.jobs.complete_batch([job.id], [lease], [{"ok": True}]) == {job.id}
    done = await store.admin.get_job(job.id)
    assert done.state is JobState.COMPLETED and done.result == {"ok": True}
    # a second completion with the same lease is stale
    assert await store.jobs.complete_batch([job.id], [lease], [None]) == set()


async def test_bulk_finalize_reschedule(store: Store) -> None:
    future = datetime.now(UTC) + timedelta(hours=1)
    ids = await store.jobs.insert_many(
        [InsertParams("k", {"i": i}) for i in range(5)] + [InsertParams("k", run_at=future)]
    )
    assert len(set(ids)) == 6
    claimed = await store.jobs.claim_batch("default", ["k"], 10, "i")
    assert len(claimed) == 5
    a, b = claimed[0], claimed[1]
    err = {"message": "boom"}
    assert await store.jobs.finalize_batch(
        [FinishedAttempt(a.id, a.run_lease, JobState.FAILED, err)]
    ) == {a.id}
    assert await store.jobs.reschedule_batch(
        [Rescheduled(b.id, b.run_lease, JobState.RETRYABLE, future, err, False)]
    ) == {b.id}
    assert (await store.admin.get_job(a.id)).errors == [err]
    assert (await store.admin.get_job(b.id)).state is JobState.RETRYABLE
    lost, cancel = await store.jobs.heartbeat(
        [c.id for c in claimed], [c.run_lease for c in claimed], [None] * 5
    )
    assert lost == {a.id, b.id} and cancel == {}


async def test_unique_insert_returns_existing(store: Store) -> None:
    first = await store.jobs.insert_job(InsertParams("u", unique_key="k1"))
    second = await store.jobs.insert_job(InsertParams("u", unique_key="k1"))
    assert second.duplicate and second.id == first.id
    [claimed] = await store.jobs.claim_batch("default", ["u"], 1, "i")
    await store.jobs.complete_batch([claimed.id], [claimed.run_lease], [None])
    third = await store.jobs.insert_job(InsertParams("u", unique_key="k1"))
    assert not third.duplicate and third.id != first.id
