"""The dead-letter hold on a real PostgreSQL: policy publication and orphaning, the move out
of the history ring (whole row, full error history, bounded pages), retention, retry as a
fresh job that a real runtime completes, unique keys on retry, purge, the move's atomicity
(a crash mid-statement, TRUNCATE by ``rotate`` in either order, a race with rotate, cleanup
and operator retries) and ``awa dlq`` through a subprocess with ``--json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import asyncpg
import pytest

import awa
from awa.clock import utcnow
from awa.config import MaintenanceConfig
from awa.db.queries import sql_text
from awa.dlq import DeadLetter, DeadLetterPolicies, DeadLetterPolicy, DeadLetters
from awa.errors import DeadLetterConflict, DeadLetterNotFound
from awa.maintenance import BranchContext
from awa.maintenance.branches.cleanup import Cleanup
from awa.maintenance.branches.dead_letter import DeadLetterHold
from awa.maintenance.branches.rotate import Rotate
from awa.store import FinishedAttempt, Rescheduled, Store

T0 = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
async def mstore(database_url: str) -> AsyncIterator[Store]:
    store = await Store.open(database_url, max_size=6)
    yield store
    await store.close()


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[awa.Client]:
    async with awa.Client(database_url) as c:
        yield c


def ctx_for(
    store: Store, clock: awa.Clock | None = None, config: MaintenanceConfig | None = None
) -> BranchContext:
    return BranchContext(
        store=store,
        clock=clock or awa.SystemClock(),
        config=config or MaintenanceConfig(startup_jitter=0),
    )


def hold(*policies: DeadLetterPolicy, **options: Any) -> DeadLetterHold:
    return DeadLetterHold(list(policies), "test", **options)


async def fail_job(
    store: Store,
    queue: str,
    *,
    attempts: int = 2,
    kind: str = "send_email",
    args: Any = None,
    **options: Any,
) -> int:
    """Insert a job and fail every attempt through the worker's store calls (claim, then
    reschedule as retryable, then finalize as failed): a real error history."""
    params = awa.InsertParams(
        kind,
        {"to": "a@example.com"} if args is None else args,
        queue=queue,
        max_attempts=attempts,
        **options,
    )
    job = await store.jobs.insert_job(params)
    for attempt in range(1, attempts + 1):
        (claimed,) = await store.jobs.claim_batch(queue, [kind], 1, "test-runtime")
        assert claimed.id == job.id and claimed.attempt == attempt
        error = {
            "at": utcnow().isoformat(),
            "attempt": attempt,
            "kind": "exception",
            "type": "RuntimeError",
            "message": f"smtp refused, attempt {attempt}",
            "traceback": f"Traceback (most recent call last):\n  line {attempt}\nRuntimeError",
        }
        if attempt < attempts:
            applied = await store.jobs.reschedule_batch(
                [
                    Rescheduled(
                        job.id,
                        claimed.run_lease,
                        awa.JobState.RETRYABLE,
                        utcnow() - timedelta(seconds=1),
                        error,
                        False,
                    )
                ]
            )
        else:
            applied = await store.jobs.finalize_batch(
                [FinishedAttempt(job.id, claimed.run_lease, awa.JobState.FAILED, error)]
            )
        assert applied == {job.id}
    return job.id


async def where(raw: asyncpg.Connection, job_id: int) -> list[str]:
    """Every table that holds ``job_id`` (a job must be in exactly one, or pruned)."""
    found = []
    for table in ("jobs", "jobs_done", "dead_letters"):
        if await raw.fetchval(f"SELECT count(*) FROM awa.{table} WHERE id = $1", job_id):
            found.append(table)
    return found


# --------------------------------------------------------------------------- policies


def test_policy_declarations_are_validated() -> None:
    policies = DeadLetterPolicies()
    policy = policies.add("emails", retention=timedelta(days=2))
    assert policy.retention_s == 2 * 86400.0
    assert policies.add("forever", retention=None).retention_s is None
    assert policies.add("default").retention_s == 30 * 86400.0
    with pytest.raises(awa.ValidationError, match="already exists"):
        policies.add("emails")
    with pytest.raises(awa.ValidationError, match="retention"):
        policies.add("x", retention=-1)
    with pytest.raises(awa.ValidationError, match="queue"):
        policies.add("")
    with pytest.raises(awa.ValidationError, match="queue"):
        policies.add("q" * 101)
    assert [p.queue for p in policies] == ["emails", "forever", "default"]
    assert "emails" in policies and len(policies) == 3
    with pytest.raises(ValueError, match="orphan_after"):
        DeadLetterHold([], "test", orphan_after=10)


async def test_sync_publishes_orphans_and_revives_policies(
    mstore: Store, raw: asyncpg.Connection
) -> None:
    clock = awa.FakeClock(T0)
    a, b = DeadLetterPolicy("a", 3600), DeadLetterPolicy("b", None)
    result = await hold(a, b).run_once(ctx_for(mstore, clock))
    assert (result.rows["declared"], result.rows["orphaned"]) == (2, 0)
    rows = {r["queue"]: r for r in await raw.fetch("SELECT * FROM awa.dead_letter_policies")}
    assert rows["a"]["retention_s"] == 3600 and rows["b"]["retention_s"] is None
    assert rows["a"]["synced_by"] == "test" and rows["a"]["declared_at"] == T0

    only_a = hold(a, orphan_after=120)
    assert (await only_a.run_once(ctx_for(mstore, clock))).rows["orphaned"] == 0  # rolling deploy
    clock.advance(121)
    assert (await only_a.run_once(ctx_for(mstore, clock))).rows["orphaned"] == 1
    b_row = await raw.fetchrow("SELECT * FROM awa.dead_letter_policies WHERE queue = 'b'")
    assert b_row is not None and b_row["orphaned_at"] == clock.now()  # kept, not deleted

    # An orphaned policy's queue keeps its failures in history; declared again, they move.
    failed = await fail_job(mstore, "b", attempts=1)
    assert (await only_a.run_once(ctx_for(mstore, clock))).rows["moved"] == 0
    assert await where(raw, failed) == ["jobs_done"]
    assert (await hold(a, b).run_once(ctx_for(mstore, clock))).rows["moved"] == 1
    assert await where(raw, failed) == ["dead_letters"]

    # A pool-only leader (no declarations) works from the stored policies, publishes nothing.
    other = await fail_job(mstore, "a", attempts=1)
    result = await DeadLetterHold(None).run_once(ctx_for(mstore, clock))
    assert result.rows == {"declared": 0, "orphaned": 0, "moved": 1, "expired": 0}
    assert await where(raw, other) == ["dead_letters"]


# ------------------------------------------------------------------------------- move


async def test_move_keeps_the_whole_row_and_error_history(
    client: awa.Client, mstore: Store, raw: asyncpg.Connection
) -> None:
    dead = await fail_job(
        mstore,
        "emails",
        attempts=3,
        args={"to": "x@example.com", "n": [1, 2.5, None]},
        tags=["billing"],
        metadata={"tenant": 7},
        priority=3,
        timeout=12.5,
    )
    other_queue = await fail_job(mstore, "reports", attempts=1)
    completed = await mstore.jobs.insert_job(awa.InsertParams("send_email", queue="emails"))
    (claimed,) = await mstore.jobs.claim_batch("emails", ["send_email"], 1, "test-runtime")
    await mstore.jobs.complete_batch([claimed.id], [claimed.run_lease], [{"ok": True}])
    cancelled = await mstore.jobs.insert_job(awa.InsertParams("send_email", queue="emails"))
    await mstore.admin.cancel_job(cancelled.id, "not needed")
    before = await raw.fetchrow("SELECT * FROM awa.jobs_done WHERE id = $1", dead)
    assert before is not None

    result = await hold(DeadLetterPolicy("emails")).run_once(ctx_for(mstore))
    assert result.rows == {"declared": 1, "orphaned": 0, "moved": 1, "expired": 0}
    assert result.more is False
    assert await where(raw, dead) == ["dead_letters"]
    for untouched in (other_queue, completed.id, cancelled.id):  # other queue, other states
        assert await where(raw, untouched) == ["jobs_done"]

    after = await raw.fetchrow("SELECT * FROM awa.dead_letters WHERE id = $1", dead)
    assert after is not None
    for column in set(before.keys()) - {"slot", "state", "result"}:
        assert after[column] == before[column], column
    assert after["reason"] == "smtp refused, attempt 3"
    assert after["retried_at"] is None and after["retried_job_id"] is None

    letter = await DeadLetters(client).get(dead)
    assert letter.args == {"to": "x@example.com", "n": [1, 2.5, None]}
    assert (letter.attempt, letter.max_attempts, letter.priority) == (3, 3, 3)
    assert (letter.tags, letter.metadata, letter.timeout) == (["billing"], {"tenant": 7}, 12.5)
    assert [e["attempt"] for e in letter.errors] == [1, 2, 3]
    assert all(e["type"] == "RuntimeError" and "Traceback" in e["traceback"] for e in letter.errors)
    assert letter.finalized_at <= letter.dead_at
    with pytest.raises(DeadLetterNotFound, match=f"id={completed.id}"):
        await DeadLetters(client).get(completed.id)
    with pytest.raises(awa.JobNotFound):  # it left the job tables: awa.all_jobs no longer has it
        await client.get_job(dead)


async def test_move_pages_in_bounded_batches(
    client: awa.Client, mstore: Store, raw: asyncpg.Connection
) -> None:
    ids = [await fail_job(mstore, "emails", attempts=1) for _ in range(25)]
    branch = hold(DeadLetterPolicy("emails"), batch=10)
    pages = []
    while True:
        result = await branch.run_once(ctx_for(mstore))
        pages.append(result.rows["moved"])
        if not result.more:
            break
    assert pages == [10, 10, 5]
    letters = await DeadLetters(client).list_letters(queue="emails", limit=100)
    assert sorted(d.id for d in letters) == ids
    assert await raw.fetchval("SELECT count(*) FROM awa.jobs_done") == 0
    first = await DeadLetters(client).list_letters(limit=10)
    assert [d.id for d in first] == sorted(ids, reverse=True)[:10]  # newest first
    rest = await DeadLetters(client).list_letters(limit=100, before_id=first[-1].id)
    assert [d.id for d in first + rest] == sorted(ids, reverse=True)


# -------------------------------------------------------------------------- retention


async def test_retention_deletes_only_letters_past_their_queue_retention(
    mstore: Store, raw: asyncpg.Connection
) -> None:
    clock = awa.FakeClock(T0)
    short = [await fail_job(mstore, "short", attempts=1) for _ in range(3)]
    forever = await fail_job(mstore, "forever", attempts=1)
    branch = hold(DeadLetterPolicy("short", 3600), DeadLetterPolicy("forever", None), batch=2)
    assert (await branch.run_once(ctx_for(mstore, clock))).rows["moved"] == 2
    assert (await branch.run_once(ctx_for(mstore, clock))).rows["moved"] == 2
    clock.advance(1800)
    late = await fail_job(mstore, "short", attempts=1)
    assert (await branch.run_once(ctx_for(mstore, clock))).rows["moved"] == 1  # dead at T0+1800

    clock.advance(1801)  # the first four are past 3600 s, the late one is not
    expired = []
    while True:
        result = await branch.run_once(ctx_for(mstore, clock))
        expired.append(result.rows["expired"])
        if not result.more:
            break
    assert expired == [2, 1]  # bounded by batch; "forever" has no retention
    assert {r["id"] for r in await raw.fetch("SELECT id FROM awa.dead_letters")} == {forever, late}
    for job_id in short:
        assert await where(raw, job_id) == []

    # An orphaned policy's retention still applies to the letters it holds.
    clock.advance(3600)
    orphaning = hold(DeadLetterPolicy("forever", None), orphan_after=120)
    result = await orphaning.run_once(ctx_for(mstore, clock))
    assert (result.rows["orphaned"], result.rows["expired"]) == (1, 1)
    assert await where(raw, late) == []
    assert await where(raw, forever) == ["dead_letters"]


# ------------------------------------------------------------------------------ retry


async def wait_letter(dlq: DeadLetters, job_id: int, timeout: float = 20.0) -> DeadLetter:
    with anyio.fail_after(timeout):
        while True:
            try:
                return await dlq.get(job_id)
            except DeadLetterNotFound:
                await anyio.sleep(0.02)


class FastHold(DeadLetterHold):
    """The branch under its own name, so it runs beside a built-in ``dead_letter``."""

    name = "dead_letter_fast"


async def test_retry_creates_a_fresh_job_that_a_runtime_completes(
    database_url: str, raw: asyncpg.Connection
) -> None:
    client = awa.Client(database_url)
    dlq = DeadLetters(client)
    policy = dlq.declare("emails", retention=timedelta(days=1))
    broken = True
    runs: list[tuple[int, int]] = []

    @client.handler("send_email", queue="emails")
    async def send(ctx: awa.JobContext) -> dict[str, str]:
        runs.append((ctx.job.id, ctx.job.attempt))
        if broken:
            raise ConnectionError(f"smtp down (attempt {ctx.job.attempt})")
        return {"sent_to": ctx.args["to"]}

    config = awa.RuntimeConfig(
        queues={"emails": 2},
        heartbeat_interval=0.1,
        poll_interval=0.2,
        shutdown_grace=5.0,
        backoff=awa.Backoff(base=0.001, cap=0.001, jitter=0.0),
    )
    maintenance = MaintenanceConfig(startup_jitter=0, election_interval=0.2)
    branch = FastHold(dlq.policies, "test-runtime", interval=0.1)
    async with client, awa.Runtime(client, config, maintenance=maintenance, branches=[branch]):
        job = await client.insert("send_email", {"to": "a@example.com"}, max_attempts=2)
        letter = await wait_letter(dlq, job.id)
        assert [e["attempt"] for e in letter.errors] == [1, 2]
        assert all(e["type"] == "ConnectionError" for e in letter.errors)
        assert letter.reason == "smtp down (attempt 2)"
        assert [p.queue for p in await dlq.list_policies()] == [policy.queue]

        broken = False
        fresh = await dlq.retry(job.id)
        assert fresh.id != job.id
        # The runtime may have claimed it already (attempt 1); ``runs`` below shows it
        # started from attempt 0, and the CLI test sees attempt 0 with no runtime.
        assert (fresh.errors, fresh.queue, fresh.kind) == ([], "emails", job.kind)
        assert fresh.args == {"to": "a@example.com"}
        assert fresh.metadata["awa.dead_letter"]["retried_from"] == job.id
        with anyio.fail_after(20):
            while True:
                done = await client.get_job(fresh.id)
                if done.state == awa.JobState.COMPLETED:
                    break
                await anyio.sleep(0.02)
        assert done.result == {"sent_to": "a@example.com"} and done.attempt == 1

        marked = await dlq.get(job.id)
        assert (marked.retried, marked.retried_job_id) == (True, fresh.id)
        with pytest.raises(DeadLetterConflict, match="already retried") as refused:
            await dlq.retry(job.id)
        assert refused.value.job_id == fresh.id
        assert await dlq.list_letters() == []  # pending only by default
        assert [d.id for d in await dlq.list_letters(include_retried=True)] == [job.id]
        (status,) = await dlq.list_policies()
        assert (status.pending, status.retried) == (0, 1)
    assert runs == [(job.id, 1), (job.id, 2), (fresh.id, 1)]
    assert await raw.fetchval("SELECT count(*) FROM awa.jobs") == 0


async def test_retry_takes_the_unique_key_or_refuses_and_changes_nothing(
    client: awa.Client, mstore: Store, raw: asyncpg.Connection
) -> None:
    dlq = DeadLetters(client)
    dead = await fail_job(mstore, "emails", attempts=1, unique_key="welcome:7", unique_scope="all")
    await hold(DeadLetterPolicy("emails")).run_once(ctx_for(mstore))
    assert await where(raw, dead) == ["dead_letters"]

    holder = await client.insert(
        "send_email", queue="emails", unique_key="welcome:7", unique_scope="all"
    )
    assert not holder.duplicate  # the dead-lettered job no longer holds its key
    with pytest.raises(DeadLetterConflict, match=f"held by job id={holder.id}") as refused:
        await dlq.retry(dead)
    assert refused.value.job_id == holder.id
    assert (await dlq.get(dead)).retried is False
    assert await raw.fetchval("SELECT count(*) FROM awa.jobs") == 1  # only the holder

    await client.cancel_job(holder.id)  # scope "all": the cancelled holder keeps the key
    with pytest.raises(DeadLetterConflict):
        await dlq.retry(dead)
    await raw.execute("DELETE FROM awa.jobs_done WHERE id = $1", holder.id)  # pruned history
    fresh = await dlq.retry(dead)
    assert fresh.unique_key == "welcome:7"
    assert (
        await raw.fetchval("SELECT job_id FROM awa.job_unique WHERE unique_key = 'welcome:7'")
        == fresh.id
    )
    duplicate = await client.insert("send_email", queue="emails", unique_key="welcome:7")
    assert duplicate.duplicate and duplicate.id == fresh.id


async def test_bulk_retry_reports_each_letter(
    client: awa.Client, mstore: Store, raw: asyncpg.Connection
) -> None:
    dlq = DeadLetters(client)
    emails = [await fail_job(mstore, "emails", attempts=1) for _ in range(3)]
    other = await fail_job(mstore, "sms", attempts=1, kind="send_sms")
    await hold(DeadLetterPolicy("emails"), DeadLetterPolicy("sms")).run_once(ctx_for(mstore))
    first = await dlq.retry(emails[0])
    outcomes = await dlq.retry_many([emails[0], emails[1], 999_999])
    assert [(o.dead_letter_id, o.job_id is not None) for o in outcomes] == [
        (emails[0], False),
        (emails[1], True),
        (999_999, False),
    ]
    assert "already retried" in (outcomes[0].error or "")
    assert "no dead letter" in (outcomes[2].error or "")
    rest = await dlq.retry_all(queue="emails")
    assert [(o.dead_letter_id, o.error) for o in rest] == [(emails[2], None)]
    assert await dlq.retry_all(queue="emails") == []
    (last,) = await dlq.retry_all()
    assert (last.dead_letter_id, last.error) == (other, None)
    live = {r["id"] for r in await raw.fetch("SELECT id FROM awa.jobs")}
    assert live == {first.id, outcomes[1].job_id, rest[0].job_id, last.job_id}
    with pytest.raises(awa.ValidationError, match="limit"):
        await dlq.retry_all(limit=0)


# ------------------------------------------------------------------------------ purge


async def test_purge_by_ids_queue_retried_and_everything(
    client: awa.Client, mstore: Store, raw: asyncpg.Connection
) -> None:
    dlq = DeadLetters(client)
    emails = [await fail_job(mstore, "emails", attempts=1) for _ in range(4)]
    sms = [await fail_job(mstore, "sms", attempts=1, kind="send_sms") for _ in range(3)]
    await hold(DeadLetterPolicy("emails"), DeadLetterPolicy("sms")).run_once(ctx_for(mstore))

    assert await dlq.purge([emails[0], 999_999]) == 1
    assert await where(raw, emails[0]) == []
    assert await dlq.purge([emails[0]]) == 0

    retried = await dlq.retry(emails[1])
    assert await dlq.purge(queue="emails", retried_only=True) == 1
    assert await where(raw, emails[1]) == []
    assert await where(raw, retried.id) == ["jobs"]  # purging a letter never touches its job

    assert await dlq.purge(queue="emails") == 2
    assert await dlq.purge(queue="emails") == 0
    assert {d.id for d in await dlq.list_letters(include_retried=True)} == set(sms)
    assert await dlq.purge(everything=True) == 3
    assert await raw.fetchval("SELECT count(*) FROM awa.dead_letters") == 0

    with pytest.raises(awa.ValidationError, match="exactly one"):
        await dlq.purge()
    with pytest.raises(awa.ValidationError, match="exactly one"):
        await dlq.purge(queue="emails", everything=True)
    with pytest.raises(awa.ValidationError, match="exactly one"):
        await dlq.purge([1], queue="emails")
    with pytest.raises(awa.ValidationError, match="retried_only"):
        await dlq.purge([1], retried_only=True)
    with pytest.raises(awa.ValidationError, match="dead_letter_ids"):
        await dlq.purge([0])


async def test_purge_runs_in_batches(
    client: awa.Client, mstore: Store, raw: asyncpg.Connection, monkeypatch: Any
) -> None:
    import awa.dlq

    ids = [await fail_job(mstore, "emails", attempts=1) for _ in range(7)]
    await hold(DeadLetterPolicy("emails")).run_once(ctx_for(mstore))
    monkeypatch.setattr(awa.dlq, "PURGE_BATCH", 3)
    assert await DeadLetters(client).purge(everything=True) == len(ids)
    assert await raw.fetchval("SELECT count(*) FROM awa.dead_letters") == 0


# ------------------------------------------------------------------------ atomicity


async def seed_history(
    raw: asyncpg.Connection, queue: str, n: int, slot: int, age: str, state: str = "failed"
) -> list[int]:
    """``n`` finished jobs written straight into ring slot ``slot``, finalized ``age`` ago."""
    rows = await raw.fetch(
        "INSERT INTO awa.jobs_done (slot, id, kind, queue, args, state, priority,"
        " original_priority, attempt, max_attempts, run_at, created_at, attempted_at,"
        " finalized_at, tags, metadata, errors, run_lease)"
        " SELECT $1, nextval('awa.job_id_seq'), 'send_email', $2, jsonb_build_object('n', g),"
        " $5::awa.job_state, 2, 2, 3, 3, now() - $3::text::interval,"
        " now() - $3::text::interval, now() - $3::text::interval, now() - $3::text::interval,"
        " '{}', '{}', jsonb_build_array(jsonb_build_object('attempt', 3, 'message', 'boom')), 3"
        " FROM generate_series(1, $4) g RETURNING id",
        slot,
        queue,
        age,
        n,
        state,
    )
    return [int(r["id"]) for r in rows]


async def publish(mstore: Store, *queues: str) -> None:
    policies = [DeadLetterPolicy(q) for q in queues]
    await mstore.dlq.dlq_upsert_policies(policies, "test")


async def wait_blocked(raw: asyncpg.Connection, needle: str) -> int:
    """The pid of the backend whose query contains ``needle`` once it waits on a lock."""
    with anyio.fail_after(10):
        while True:
            pid = await raw.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()",
                needle,
            )
            if pid is not None:
                return int(pid)
            await anyio.sleep(0.01)


async def test_a_crash_in_the_middle_of_a_move_leaves_every_job_in_history(
    database_url: str, mstore: Store, raw: asyncpg.Connection
) -> None:
    await publish(mstore, "emails")
    ids = await seed_history(raw, "emails", 50, 0, "1 min")
    # Another transaction inserts (uncommitted) a letter with the id of one of the jobs, so
    # the move blocks on that unique key in the middle of its statement: its DELETE has run
    # for some rows, its INSERT waits. Then its backend is killed.
    blocker = await asyncpg.connect(database_url)
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute(
            "INSERT INTO awa.dead_letters SELECT id, kind, queue, args, priority,"
            " original_priority, attempt, max_attempts, run_at, created_at, attempted_at,"
            " finalized_at, timeout_s, tags, metadata, errors, progress, unique_key,"
            " unique_states, run_lease, claimed_by, 'blocker', now()"
            " FROM awa.jobs_done WHERE id = $1",
            ids[-1],
        )
        store = mstore
        failure: list[BaseException] = []

        async def move() -> None:
            try:
                await store.dlq.dlq_move(1000)
            except awa.DatabaseUnavailable as exc:
                failure.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(move)
            pid = await wait_blocked(raw, "INSERT INTO awa.dead_letters (id")
            assert await raw.fetchval("SELECT pg_terminate_backend($1)", pid)
        assert failure, "the killed move must report a lost connection"
        await tx.rollback()
    finally:
        await blocker.close()
    assert await raw.fetchval("SELECT count(*) FROM awa.dead_letters") == 0
    assert sorted(r["id"] for r in await raw.fetch("SELECT id FROM awa.jobs_done")) == ids
    result = await DeadLetterHold(None).run_once(ctx_for(mstore))
    assert result.rows["moved"] == 50
    for job_id in ids:
        assert await where(raw, job_id) == ["dead_letters"]


async def test_truncate_waits_for_a_move_in_flight_and_the_moved_rows_survive(
    database_url: str, mstore: Store, raw: asyncpg.Connection
) -> None:
    await publish(mstore, "emails")
    expired_failed = await seed_history(raw, "emails", 20, 2, "30 days")
    expired_done = await seed_history(raw, "emails", 5, 2, "30 days", "completed")
    mover = await asyncpg.connect(database_url)
    try:
        tx = mover.transaction()
        await tx.start()
        moved = await mover.fetch(sql_text("dlq_move"), 1000, None)
        assert len(moved) == 20

        async def truncate() -> None:
            await mstore.maintenance.truncate_slot(2)  # what rotate does to an expired slot

        async with anyio.create_task_group() as tg:
            tg.start_soon(truncate)
            await wait_blocked(raw, "TRUNCATE awa.jobs_done_2")
            await tx.commit()
    finally:
        await mover.close()
    for job_id in expired_failed:
        assert await where(raw, job_id) == ["dead_letters"]
    for job_id in expired_done:
        assert await where(raw, job_id) == []  # pruned by the TRUNCATE, as it should be


async def test_a_move_waits_for_a_truncate_in_flight_and_finds_the_slot_pruned(
    database_url: str, mstore: Store, raw: asyncpg.Connection
) -> None:
    await publish(mstore, "emails")
    pruned = await seed_history(raw, "emails", 10, 2, "30 days")
    fresh = await seed_history(raw, "emails", 10, 0, "1 min")
    pruner = await asyncpg.connect(database_url)
    try:
        tx = pruner.transaction()
        await tx.start()
        await pruner.execute("TRUNCATE awa.jobs_done_2")
        result: list[int] = []

        async def move() -> None:
            result.extend(i for i, _ in await mstore.dlq.dlq_move(1000))

        async with anyio.create_task_group() as tg:
            tg.start_soon(move)
            await wait_blocked(raw, "awa.dead_letters")
            await tx.commit()
    finally:
        await pruner.close()
    assert sorted(result) == fresh
    for job_id in pruned:
        assert await where(raw, job_id) == []
    for job_id in fresh:
        assert await where(raw, job_id) == ["dead_letters"]


async def race_round(mstore: Store, raw: asyncpg.Connection, config: MaintenanceConfig) -> None:
    expired = await seed_history(raw, "emails", 60, 2, "2 hours")
    fresh = await seed_history(raw, "emails", 60, 0, "1 min")
    retried: set[int] = set()

    async def moves() -> None:
        branch = DeadLetterHold(None, batch=7)
        while True:
            if not (await branch.run_once(ctx_for(mstore, config=config))).more:
                return

    async def prune() -> None:
        for _ in range(3):
            await Rotate().run_once(ctx_for(mstore, config=config))
            await Cleanup(batch=5).run_once(ctx_for(mstore, config=config))

    async def operator() -> None:
        for job_id in fresh[::5]:
            try:
                await mstore.admin.retry_job(job_id)
                retried.add(job_id)
            except (awa.JobNotFound, awa.InvalidTransition):
                pass  # already moved to the hold: not a job any more

    async with anyio.create_task_group() as tg:
        tg.start_soon(moves)
        tg.start_soon(prune)
        tg.start_soon(operator)
    # Rows skipped because an operator's retry held them are taken by the next run.
    await DeadLetterHold(None).run_once(ctx_for(mstore, config=config))

    for job_id in fresh:
        expected = ["jobs"] if job_id in retried else ["dead_letters"]
        assert await where(raw, job_id) == expected, job_id
    for job_id in expired:
        assert await where(raw, job_id) in ([], ["dead_letters"]), job_id


async def test_moves_racing_rotate_cleanup_and_operator_retries_never_lose_a_job(
    mstore: Store, raw: asyncpg.Connection
) -> None:
    """Rounds of a real race: the branch moving in small pages, rotate pruning an expired
    slot, cleanup deleting expired failures row by row, and an operator retrying fresh
    failures through ``retry_job``. Every fresh failure ends in exactly one place (the hold
    or the live table); an expired one in at most one; no job is ever in two tables."""
    config = MaintenanceConfig(
        startup_jitter=0,
        retention={"completed": 7200.0, "failed": 3600.0, "cancelled": 7200.0},
    )
    await publish(mstore, "emails")
    for _ in range(4):
        await race_round(mstore, raw, config)
        await raw.execute("DELETE FROM awa.jobs")
        await raw.execute("DELETE FROM awa.dead_letters")


# -------------------------------------------------------------------------------- CLI


def awa_dlq(database_url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "awa.cli.main", "--database-url", database_url, "dlq"]
    return subprocess.run(
        [*command, *argv], check=False, capture_output=True, text=True, timeout=60
    )


async def test_cli_list_show_retry_purge_policies_json(database_url: str, mstore: Store) -> None:
    dead = await fail_job(mstore, "emails", attempts=2)
    other = await fail_job(mstore, "sms", attempts=1, kind="send_sms")
    await hold(DeadLetterPolicy("emails", 86400), DeadLetterPolicy("sms")).run_once(ctx_for(mstore))

    async def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return await anyio.to_thread.run_sync(lambda: awa_dlq(database_url, *argv))

    out = await run("list", "--json")
    assert out.returncode == 0, out.stderr
    assert [d["id"] for d in json.loads(out.stdout)] == [other, dead]
    out = await run("list", "--queue", "emails")
    assert out.returncode == 0 and "smtp refused, attempt 2" in out.stdout

    out = await run("show", str(dead), "--json")
    shown = json.loads(out.stdout)
    assert [e["message"] for e in shown["errors"]] == [
        "smtp refused, attempt 1",
        "smtp refused, attempt 2",
    ]
    assert shown["queue"] == "emails" and shown["retried_job_id"] is None
    out = await run("show", str(dead))
    assert "#2 attempt 2" in out.stdout and "Traceback" in out.stdout
    out = await run("show", "424242")
    assert out.returncode == 2 and "no dead letter with id=424242" in out.stderr

    out = await run("retry", str(dead), "--json")
    assert out.returncode == 0, out.stderr
    (outcome,) = json.loads(out.stdout)
    assert outcome["dead_letter_id"] == dead and outcome["error"] is None
    fresh = await mstore.admin.get_job(outcome["job_id"])
    assert (fresh.state, fresh.attempt) == (awa.JobState.AVAILABLE, 0)
    out = await run("retry", str(dead), "--json")
    assert out.returncode == 1
    assert "already retried" in json.loads(out.stdout)[0]["error"]
    out = await run("retry", str(dead), "--queue", "emails")
    assert out.returncode == 2 and "exactly one" in out.stderr

    out = await run("policies", "--json")
    policies = {p["queue"]: p for p in json.loads(out.stdout)}
    assert policies["emails"]["retention_s"] == 86400 and policies["emails"]["retried"] == 1
    assert policies["sms"]["pending"] == 1

    out = await run("purge", "--all", "--retried", "--json")
    assert json.loads(out.stdout) == {"purged": 1}
    out = await run("purge", "--queue", "sms", "--json")
    assert json.loads(out.stdout) == {"purged": 1}
    out = await run("list", "--all", "--json")
    assert json.loads(out.stdout) == []


async def test_a_letter_with_unreadable_metadata_or_errors_is_still_listed_and_shown(
    client: awa.Client, mstore: Store, raw: asyncpg.Connection
) -> None:
    """Another producer (or a hand edit) can leave jsonb Python cannot use: nesting past
    the recursion limit, or the wrong shape. Reading the hold must not raise for it."""
    dead = await fail_job(mstore, "emails", attempts=1)
    await hold(DeadLetterPolicy("emails")).run_once(ctx_for(mstore))
    deep = "[" * 5000 + "]" * 5000
    await raw.execute(
        "UPDATE awa.dead_letters SET metadata = $2::jsonb, errors = '5'::jsonb WHERE id = $1",
        dead,
        deep,
    )
    letter = await DeadLetters(client).get(dead)
    assert isinstance(letter.metadata, awa.UnreadableMetadata) and letter.metadata == {}
    assert "recursion" in letter.metadata.reason
    assert [e["kind"] for e in letter.errors] == ["unreadable"]
    assert dead in [listed.id for listed in await DeadLetters(client).list_letters(queue="emails")]
