"""``enqueued_jobs``, ``assert_enqueued`` and ``refute_enqueued`` read the real database,
through a client or through the caller's own connection (its open transaction included),
and say what *was* enqueued when they fail."""

from __future__ import annotations

import asyncpg
import pytest

import awa
from awa.testing import (
    Completed,
    assert_enqueued,
    enqueued_jobs,
    perform,
    refute_enqueued,
)


async def test_filters_by_kind_queue_args_containment_and_state(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        a = await client.insert("send_email", {"to": "a@example.com", "lang": "en"})
        b = await client.insert("send_email", {"to": "b@example.com"}, queue="mail")
        c = await client.insert("report", {"to": "a@example.com"}, delay=3600)
        done = await client.insert("send_email", {"to": "a@example.com"})
        async with client.store.db.connection() as conn:
            await conn.execute(
                "UPDATE awa.jobs SET state = 'running', attempt = 1 WHERE id = $1", done.id
            )
        gone = await client.insert("send_email", {"to": "c@example.com"})
        await client.cancel_job(gone.id)  # moved to the finished history

        def ids(jobs: list[awa.Job]) -> list[int]:
            return [j.id for j in jobs]

        assert ids(await enqueued_jobs(client)) == [a.id, b.id, c.id]
        assert ids(await enqueued_jobs(client, kind="send_email")) == [a.id, b.id]
        assert ids(await enqueued_jobs(client, queue="mail")) == [b.id]
        assert ids(await enqueued_jobs(client, args={"to": "a@example.com"})) == [a.id, c.id]
        assert ids(await enqueued_jobs(client, args={"to": "a@example.com", "lang": "fr"})) == []
        assert ids(await enqueued_jobs(client, state="scheduled")) == [c.id]
        assert ids(await enqueued_jobs(client, state=None, kind="send_email")) == [
            a.id,
            b.id,
            done.id,
            gone.id,
        ]
        assert ids(await enqueued_jobs(client, state=["cancelled", "running"])) == [
            done.id,
            gone.id,
        ]
        [job] = await enqueued_jobs(client, kind="send_email", queue="mail")
        assert job.args == {"to": "b@example.com"}
        assert job.state is awa.JobState.AVAILABLE
        with pytest.raises(awa.ValidationError):
            await enqueued_jobs(client, state="finished")


async def test_assert_enqueued_returns_the_matches_and_checks_a_count(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        await client.insert("send_email", {"to": "a@example.com"})
        await client.insert("send_email", {"to": "a@example.com"}, queue="mail")
        matches = await assert_enqueued(client, kind="send_email", args={"to": "a@example.com"})
        assert len(matches) == 2
        await assert_enqueued(client, kind="send_email", count=2)
        with pytest.raises(AssertionError, match="exactly 1 job"):
            await assert_enqueued(client, kind="send_email", count=1)


async def test_a_failed_assertion_lists_what_was_enqueued(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        job = await client.insert("send_email", {"to": "b@example.com"}, queue="mail")
        with pytest.raises(AssertionError) as info:
            await assert_enqueued(client, kind="send_email", args={"to": "a@example.com"})
    message = str(info.value)
    assert "kind='send_email'" in message
    assert 'args containing {"to": "a@example.com"}' in message
    assert "found 0" in message
    assert (
        f"#{job.id} kind='send_email' queue='mail' state=available "
        f'args={{"to": "b@example.com"}}' in message
    )


async def test_refute_enqueued_lists_the_jobs_that_match(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        await refute_enqueued(client, kind="send_email")
        job = await client.insert("send_email", {"to": "a@example.com"})
        await refute_enqueued(client, kind="send_email", args={"to": "b@example.com"})
        with pytest.raises(AssertionError) as info:
            await refute_enqueued(client, kind="send_email")
    assert "expected no job matching kind='send_email'" in str(info.value)
    assert f"#{job.id} kind='send_email'" in str(info.value)


async def test_a_connection_sees_its_own_transaction(database_url: str) -> None:
    """A plain asyncpg connection (no awa codecs), inside the caller's transaction."""
    async with awa.Client(database_url) as client:
        conn = await asyncpg.connect(database_url)
        try:
            transaction = conn.transaction()
            await transaction.start()
            await client.insert("send_email", {"to": "a@example.com"}, conn=conn)
            [job] = await assert_enqueued(conn, kind="send_email")
            assert job.args == {"to": "a@example.com"}
            await refute_enqueued(client, kind="send_email")  # not committed yet
            await transaction.rollback()
            await refute_enqueued(conn, kind="send_email")
        finally:
            await conn.close()


async def test_a_performed_handler_that_enqueues_is_seen_in_the_database(
    database_url: str,
) -> None:
    client = awa.Client(database_url)

    @client.handler("signup")
    async def signup(ctx: awa.JobContext) -> int:
        follow_up = await client.insert("send_email", {"to": ctx.args["email"]}, queue="mail")
        return follow_up.id

    async with client:
        result = await perform(client, "signup", {"email": "new@example.com"})
        assert isinstance(result, Completed)
        [job] = await assert_enqueued(
            client, kind="send_email", queue="mail", args={"to": "new@example.com"}
        )
        assert job.id == result.result
        await refute_enqueued(client, kind="signup")  # perform itself stores nothing
