"""``admin.jobs``: the filters (tag, finished-between), discard, and bulk retry / cancel /
discard by filter (ADR 032), against a real database with jobs a real runtime failed.

What must hold: a bulk action touches exactly the jobs its filter matches in the states the
single action accepts; works in batches (several transactions, each at most ``batch``
ids); refuses when the filter matches more than was confirmed and never acts on more than
that; retried jobs run to completion; discard frees the unique key and refuses a running
job."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest

import awa
from awa.admin import Admin
from awa.admin.jobs import JobFilter
from awa.config import MaintenanceConfig
from awa.errors import ConfirmationExceeded, InvalidTransition, JobNotFound, ValidationError
from awa.store.admin_bulk import BulkActions
from support.console import QUICK_RETRY, finished, until

FAST = MaintenanceConfig(startup_jitter=0, election_interval=0.2)


def _runtime(client: awa.Client) -> awa.Runtime:
    config = awa.RuntimeConfig(queues={"default": 4, "mail": 4}, backoff=QUICK_RETRY)
    return awa.Runtime(client, config, maintenance=FAST)


async def _failed(client: awa.Client, n: int, queue: str, tags: list[str]) -> list[int]:
    """``n`` jobs of kind "flaky" in ``queue`` that a real runtime ran and failed."""
    jobs = [
        await client.insert("flaky", {"i": i}, queue=queue, max_attempts=1, tags=tags)
        for i in range(n)
    ]
    async with _runtime(client):
        for job in jobs:
            assert (await finished(client, job.id)).state == "failed"
    return [j.id for j in jobs]


async def test_filters_by_tag_and_finished_window(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        admin = Admin.of(client)
        fail = True

        @client.handler("flaky", queue="mail")
        async def flaky(ctx: awa.JobContext) -> None:
            if fail:
                raise RuntimeError("down")

        red = await _failed(client, 3, "mail", ["red", "tenant:1"])
        blue = await _failed(client, 2, "default", ["blue"])
        waiting = await client.insert("later", {}, tags=["red"], delay=3600)
        by_tag = await admin.jobs.find(tag="red")
        assert [j.id for j in by_tag] == [waiting.id, *reversed(red)]
        assert [j.id for j in await admin.jobs.find(tag="blue", state="failed")] == blue[::-1]
        assert await admin.jobs.find(tag="nobody") == []

        # Finished between: the failures' finalized_at, never a live job.
        done = [await client.get_job(i) for i in red + blue]
        first = min(j.finalized_at for j in done if j.finalized_at)
        last = max(j.finalized_at for j in done if j.finalized_at)
        window = await admin.jobs.find(since=first, until=last + timedelta(microseconds=1))
        assert sorted(j.id for j in window) == sorted(red + blue)
        assert await admin.jobs.find(since=last + timedelta(seconds=1)) == []
        only_first = await admin.jobs.find(since=first, until=first + timedelta(microseconds=1))
        at_first = sorted((j.id for j in done if j.finalized_at == first), reverse=True)
        assert [j.id for j in only_first] == at_first and len(at_first) < 5
        # Keyset paging stays under a filter.
        page = await admin.jobs.find(tag="red", limit=2)
        rest = await admin.jobs.find(tag="red", limit=2, before_id=page[-1].id)
        assert [j.id for j in page + rest] == [waiting.id, *reversed(red)][:4]

        with pytest.raises(ValidationError):
            await admin.jobs.find(since="yesterday")
        with pytest.raises(ValidationError):
            await admin.jobs.find(since="2026-12-06T02:00:00")  # no zone
        with pytest.raises(ValidationError):
            await admin.jobs.find(since=last, until=first)
        with pytest.raises(ValidationError, match="not both"):
            await admin.jobs.find(JobFilter.of(tag="red"), queue="mail")
        fail = False


async def test_discard_deletes_any_job_but_a_running_one_and_frees_its_key(
    database_url: str,
) -> None:
    async with awa.Client(database_url) as client:
        admin = Admin.of(client)
        started = anyio.Event()

        @client.handler("stuck")
        async def stuck(ctx: awa.JobContext) -> None:
            started.set()
            await anyio.sleep(3600)

        keyed = await client.insert("report", {}, unique_key="daily", delay=3600)
        again = await client.insert("report", {}, unique_key="daily", delay=3600)
        assert again.id == keyed.id  # the key is held
        gone = await admin.jobs.discard(keyed.id)
        assert gone.id == keyed.id and gone.state is awa.JobState.SCHEDULED
        with pytest.raises(JobNotFound):
            await admin.jobs.get(keyed.id)
        fresh = await client.insert("report", {}, unique_key="daily", delay=3600)
        assert fresh.id != keyed.id  # the key was freed
        with pytest.raises(JobNotFound):
            await admin.jobs.discard(keyed.id)

        async with _runtime(client):
            running = await client.insert("stuck", {})
            await started.wait()
            with pytest.raises(InvalidTransition, match="running"):
                await admin.jobs.discard(running.id)
            assert (await client.get_job(running.id)).state is awa.JobState.RUNNING
            await admin.jobs.cancel(running.id)
            assert (await finished(client, running.id)).state == "cancelled"
        # A finished job goes too (from the history).
        assert (await admin.jobs.discard(running.id)).state is awa.JobState.CANCELLED
        with pytest.raises(JobNotFound):
            await admin.jobs.get(running.id)


async def test_bulk_retry_by_filter_in_batches_then_the_jobs_complete(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        admin = Admin.of(client)
        fail = True
        ran: list[int] = []

        @client.handler("flaky", queue="mail")
        async def flaky(ctx: awa.JobContext) -> None:
            if fail:
                raise RuntimeError("down")
            ran.append(ctx.job.id)

        mail = await _failed(client, 7, "mail", [])
        other = await _failed(client, 2, "default", [])
        keyed = await client.insert("flaky", {}, queue="mail", max_attempts=1, unique_key="k1")
        async with _runtime(client):
            assert (await finished(client, keyed.id)).state == "failed"
        mail.append(keyed.id)

        where = JobFilter.of(state="failed", queue="mail")
        assert await admin.jobs.count("retry", where) == 8
        assert await admin.jobs.count("cancel", where) == 0  # failed jobs are not live
        with pytest.raises(ConfirmationExceeded, match="8 jobs"):
            await admin.jobs.bulk_retry(where, confirmed=7)
        assert await admin.jobs.count("retry", where) == 8  # nothing was done

        fail = False
        outcome = await admin.jobs.bulk("retry", where, confirmed=8, batch=3)
        assert (outcome.matched, outcome.acted, outcome.batches) == (8, 8, 3)
        async with _runtime(client):
            for job_id in mail:
                assert (await finished(client, job_id)).state == "completed"
        assert sorted(ran) == sorted(mail)
        assert {(await client.get_job(i)).state for i in other} == {awa.JobState.FAILED}
        assert await admin.jobs.count("retry", where) == 0


async def test_bulk_never_acts_on_more_than_confirmed(database_url: str) -> None:
    """Jobs that start matching while the walk runs (here: fewer confirmed than match at the
    end) are not acted on beyond the confirmed count."""
    async with awa.Client(database_url) as client:
        admin = Admin.of(client)
        jobs = [await client.insert("later", {"i": i}, queue="slow", delay=3600) for i in range(5)]
        where = JobFilter.of(queue="slow")
        assert await admin.jobs.count("cancel", where) == 5
        with pytest.raises(ConfirmationExceeded):
            await admin.jobs.bulk_cancel(where, confirmed=4)
        outcome = await admin.jobs.bulk_cancel(where, confirmed=5, reason="incident 12")
        assert outcome.acted == 5
        states = {(await client.get_job(j.id)).state for j in jobs}
        assert states == {awa.JobState.CANCELLED}
        detail = await client.get_job(jobs[0].id)
        assert detail.errors[-1]["message"] == "incident 12"
        # Over-confirming is fine: it acts on what matches (an upper bound, not a demand).
        more = [await client.insert("later", {"i": i}, queue="slow") for i in range(3)]
        assert (await admin.jobs.bulk_discard(where, confirmed=100)).acted == 8
        for job in jobs + more:
            with pytest.raises(JobNotFound):
                await client.get_job(job.id)


async def test_bulk_cancel_asks_running_jobs_to_stop(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        admin = Admin.of(client)

        @client.handler("stuck")
        async def stuck(ctx: awa.JobContext) -> None:
            await anyio.sleep(3600)

        async with _runtime(client):
            jobs = [await client.insert("stuck", {"i": i}) for i in range(3)]

            async def all_running() -> bool:
                states = {(await client.get_job(j.id)).state for j in jobs}
                return states == {awa.JobState.RUNNING}

            await until(all_running)
            where = JobFilter.of(kind="stuck")
            assert await admin.jobs.count("discard", where) == 0  # running: cancel first
            assert (await admin.jobs.bulk_cancel(where, confirmed=3)).acted == 3
            for job in jobs:
                assert (await finished(client, job.id)).state == "cancelled"
        assert await admin.jobs.count("discard", where) == 3
        assert (await admin.jobs.bulk_discard(where, confirmed=3)).acted == 3
        assert await admin.jobs.find(kind="stuck") == []
        with pytest.raises(ValidationError):
            await admin.jobs.count("zap", where)
        with pytest.raises(ValidationError):
            await admin.jobs.bulk("retry", where, confirmed=1, batch=0)


async def test_a_job_that_starts_matching_during_the_walk_is_not_acted_on(
    database_url: str,
) -> None:
    """The walk stops at the confirmed count even when another job starts matching while it
    runs. Made deterministic by doing the concurrent change (an operator cancelling an
    older job, so that it matches ``state=cancelled``) at a known point: when the walk
    retries its keyed job, between two batches."""
    async with awa.Client(database_url) as client:
        admin = Admin.of(client)
        older = await client.insert("later", {"n": 0}, delay=3600)
        keyed = await client.insert("later", {"n": 1}, delay=3600, unique_key="k")
        newest = await client.insert("later", {"n": 2}, delay=3600)
        for job in (keyed, newest):
            await admin.jobs.cancel(job.id)
        where = JobFilter.of(state="cancelled")
        assert await admin.jobs.count("retry", where) == 2

        store = client.store

        async def retry_one(job_id: int, now: object) -> object:
            retried = await store.admin.retry_job(job_id)
            await admin.jobs.cancel(older.id)  # now it matches too
            return retried

        bulk = BulkActions(store.db, store.jobs, retry_one)
        outcome = await bulk.apply("retry", where, confirmed=2, batch=1)
        assert (outcome.matched, outcome.acted) == (2, 2)
        assert (await client.get_job(older.id)).state is awa.JobState.CANCELLED  # left alone
        assert {(await client.get_job(j.id)).state for j in (keyed, newest)} == {
            awa.JobState.AVAILABLE
        }
