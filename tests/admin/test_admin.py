"""``awa.admin``, the operator layer the CLI and the dashboard share, against a real
database: each area does what the client's own method (or the store query it wraps) does,
and the two ways in (``Admin.of`` a client, ``Admin.open`` a URL) own their pools as
documented."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import pytest

import awa
from awa.admin import Admin
from awa.config import MaintenanceConfig
from awa.errors import ScheduleNotFound
from awa.model import JobState
from awa.store import Rescheduled


async def test_jobs_area_matches_the_client(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        admin = Admin.of(client)
        first = await client.insert("send", {"n": 1})
        later = await client.insert("send", {"n": 2}, delay=3600)
        listed = await admin.jobs.find()
        assert [j.id for j in listed] == [j.id for j in await client.list_jobs()]
        assert [j.id for j in await admin.jobs.find(state="scheduled")] == [later.id]
        assert (await admin.jobs.get(first.id)).args == {"n": 1}
        stats = {(c.queue, c.state): c.count for c in await admin.jobs.queue_stats()}
        assert stats == {("default", "available"): 1, ("default", "scheduled"): 1}
        cancelled = await admin.jobs.cancel(later.id)
        assert cancelled.state is awa.JobState.CANCELLED
        retried = await admin.jobs.retry(later.id)
        assert retried.state is awa.JobState.AVAILABLE
        with pytest.raises(awa.JobNotFound):
            await admin.jobs.get(10**9)
        # Borrowed pool: closing the admin leaves the client connected.
        await admin.close()
        assert (await client.get_job(first.id)).id == first.id


async def test_open_owns_a_small_pool_and_reads_what_the_leader_persisted(
    database_url: str,
) -> None:
    async with await Admin.open(database_url) as admin:
        assert await admin.maintenance.leader() is None
        assert await admin.maintenance.health() == []
        assert await admin.maintenance.catalog() == []
        assert await admin.maintenance.snapshot() == {"leader": None, "branches": [], "queues": []}
        assert await admin.events.recent() == []
        assert await admin.events.sinks() == []
        assert await admin.events.flush() == 0
        assert await admin.events.purge(include_pending=True) == 0
        assert await admin.events.forget("gone") == 0
        pool = admin.maintenance._host.store.db.pool
        assert pool.get_max_size() == 1
    assert pool.is_closing()

    client = awa.Client(database_url)
    client.describe_queue("default", "the default queue")
    config = MaintenanceConfig(startup_jitter=0, health_interval=0.1)
    async with (
        client,
        awa.Runtime(client, maintenance=config),
        await Admin.open(database_url) as admin,
    ):
        with anyio.fail_after(15):
            while True:
                if await admin.maintenance.leader() and await admin.maintenance.health():
                    break
                await anyio.sleep(0.05)
        catalog = await admin.maintenance.catalog()
    assert {"type": "queue", "name": "default"}.items() <= catalog[0].items()


async def test_cron_and_dlq_areas(database_url: str) -> None:
    client = awa.Client(database_url)
    client.schedule("nightly", "0 3 * * *", "report")
    client.dlq.declare("emails")
    async with client:
        await awa.Runtime(client, role="maintenance").tick(force=True)
        admin = Admin.of(client)
        assert [s["name"] for s in await admin.cron.all()] == ["nightly"]
        await admin.cron.pause("nightly")
        assert (await admin.cron.all())[0]["operator_paused"] is True
        await admin.cron.resume("nightly")
        assert (await admin.cron.all())[0]["operator_paused"] is False
        with pytest.raises(ScheduleNotFound):
            await admin.cron.pause("nope")
        assert [p.queue for p in await admin.dlq.list_policies()] == ["emails"]
        assert await admin.dlq.list_letters() == []


async def test_state_counts_cover_the_given_ids_only_with_every_state(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        admin = Admin.of(client)
        mine = await client.insert_many([client.params("send", {"n": i}) for i in range(3)])
        later = await client.insert("send", {"n": 3}, delay=3600)
        await client.insert_many([client.params("send", {"n": i}) for i in range(5)])  # not mine
        await admin.jobs.cancel(mine[0])  # finished: counted from the history
        counts = await admin.jobs.state_counts([*mine, later.id, 10**12])
        assert counts == {
            **dict.fromkeys(awa.JobState, 0),
            awa.JobState.AVAILABLE: 2,
            awa.JobState.SCHEDULED: 1,
            awa.JobState.CANCELLED: 1,
        }
        assert await admin.jobs.state_counts([]) == dict.fromkeys(awa.JobState, 0)


async def test_single_retry_retakes_the_unique_key_or_changes_nothing(database_url: str) -> None:
    """A finished job with a unique key comes back holding its key; when another job took
    the key meanwhile, the retry is refused (typed, naming the key) and the job stays as
    it was: the history row removed by the retry's first statement is put back by the
    rollback."""
    async with awa.Client(database_url) as client:
        admin = Admin.of(client)
        first = await client.insert("report", {}, unique_key="daily", delay=3600)
        await admin.jobs.cancel(first.id)
        taker = await client.insert("report", {}, unique_key="daily", delay=3600)
        assert taker.id != first.id  # a cancelled job frees its key
        with pytest.raises(awa.InvalidTransition, match="'daily' is taken"):
            await admin.jobs.retry(first.id)
        assert (await client.get_job(first.id)).state is awa.JobState.CANCELLED
        await admin.jobs.discard(taker.id)
        retried = await admin.jobs.retry(first.id)
        assert retried.state is awa.JobState.AVAILABLE
        again = await client.insert("report", {}, unique_key="daily", delay=3600)
        assert again.id == first.id  # the retried job holds the key again


async def test_single_retry_of_a_retryable_job_whose_key_went_elsewhere(database_url: str) -> None:
    """A job with a ``queued``-scope key gives the key up when claimed; another job takes
    it; the first fails and is retryable, without the key. A retry makes it available now,
    as before: it does not try to retake a key it did not hold (a review found the single
    retry refusing it, naming the wrong state)."""
    async with awa.Client(database_url) as client:
        admin = Admin.of(client)
        first = await client.insert("report", {}, unique_key="k1", unique_scope="queued")
        [claimed] = await client.store.jobs.claim_batch("default", ["report"], 1, "test")
        taker = await client.insert(
            "report", {}, unique_key="k1", unique_scope="queued", delay=3600
        )
        assert taker.id != first.id
        later = datetime.now(UTC) + timedelta(hours=1)
        await client.store.jobs.reschedule_batch(
            [Rescheduled(claimed.id, claimed.run_lease, JobState.RETRYABLE, later, None, False)]
        )
        assert (await client.get_job(first.id)).state is JobState.RETRYABLE
        retried = await admin.jobs.retry(first.id)
        assert retried.state is JobState.AVAILABLE
        assert (await client.get_job(taker.id)).state is JobState.SCHEDULED
