"""The dead-letter hold's operator side on a real PostgreSQL: policy declarations, retry as
a fresh job that a real runtime completes, unique keys on retry, bulk retry, purge, reading
letters whose jsonb Python cannot use, and ``awa dlq`` through a subprocess with ``--json``.

The branch that moves failures into the hold (and its atomicity) is tested in
``tests/maintenance/branches/test_dead_letter.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from typing import Any

import anyio
import asyncpg
import pytest

import awa
from awa.config import MaintenanceConfig
from awa.dlq import DeadLetter, DeadLetterPolicies, DeadLetterPolicy, DeadLetters
from awa.errors import DeadLetterConflict, DeadLetterNotFound
from awa.maintenance.branches.dead_letter import DeadLetterHold
from awa.store import Store
from support.dlq_world import fail_job, hold, where
from support.store_world import ctx_for


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
