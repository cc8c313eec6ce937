"""Hostile values reaching a running runtime: what handlers return or raise, and rows that
other producers wrote (awa is PostgreSQL-native: any SQL client may insert jobs).

The contract: one bad job ends (failed, with an error saying why, or completed with the
unstorable result replaced by a marker), its neighbour completes, and the runtime keeps
running. A value that kills the runtime is a poison pill: every restart claims it again.

Each case runs a real runtime against PostgreSQL next to a healthy job; ``run_until_settled``
watches ``run_until_stopped`` so a crash fails the test at once instead of timing out.
Bugs are strict xfails (``reason="BUG: ..."``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import anyio
import asyncpg
import pytest

import awa
from awa.model import UndecodableJson

CONFIG = awa.RuntimeConfig(
    queues={"default": 4}, poll_interval=0.2, heartbeat_interval=0.2, shutdown_grace=2.0
)
TERMINAL = ("completed", "failed", "cancelled")


def deep(levels: int) -> Any:
    value: Any = []
    for _ in range(levels):
        value = [value]
    return value


async def states(raw: asyncpg.Connection, *ids: int) -> list[str]:
    rows = await raw.fetch("SELECT id, state::text FROM awa.all_jobs WHERE id = ANY($1)", ids)
    by_id = {int(r["id"]): str(r["state"]) for r in rows}
    return [by_id[i] for i in ids]


async def run_until_settled(
    client: awa.Client, settled: Callable[[], Awaitable[bool]], timeout: float = 20.0
) -> None:
    """Run a runtime until ``settled()``; if the runtime dies first, its error is raised."""
    runtime = awa.Runtime(client, CONFIG, run_maintenance=False)
    await runtime.start()
    try:
        with anyio.fail_after(timeout):
            async with anyio.create_task_group() as tg:
                tg.start_soon(runtime.run_until_stopped)  # raises as soon as the host dies
                while True:
                    if await settled():
                        break
                    await anyio.sleep(0.05)
                await runtime.shutdown()
    finally:
        with anyio.CancelScope(shield=True):
            await runtime.abort()


async def hostile_job(
    database_url: str,
    raw: asyncpg.Connection,
    behaviour: Callable[[awa.JobContext], Awaitable[Any]],
    *,
    tamper: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """Run one job with ``behaviour`` as its handler (its row optionally rewritten by the
    SQL ``tamper``, ``$1`` = its id) beside a healthy job; return its final state and row."""
    client = awa.Client(database_url)
    client.handler("hostile")(behaviour)

    @client.handler("healthy")
    async def healthy(ctx: awa.JobContext) -> str:
        return "fine"

    async with client:
        bad = await client.insert("hostile", {"n": 1}, max_attempts=1)
        good = await client.insert("healthy")
        if tamper is not None:
            await raw.execute(tamper, bad.id)

        async def settled() -> bool:
            return all(s in TERMINAL for s in await states(raw, bad.id, good.id))

        await run_until_settled(client, settled)
        assert await states(raw, good.id) == ["completed"]
    row = await raw.fetchrow(
        "SELECT state::text, result::text, errors::text FROM awa.all_jobs WHERE id = $1", bad.id
    )
    assert row is not None
    return str(row["state"]), dict(row)


# ----------------------------------------------------------------- handler results

UNSTORABLE = {
    "nan": float("nan"),
    "set": {1, 2},
    "object": object(),
    "lone-surrogate": "\ud800",
    "nul": "a\x00b",
}


@pytest.mark.parametrize("name", list(UNSTORABLE))
async def test_unstorable_result_completes_with_a_marker(
    database_url: str, raw: asyncpg.Connection, name: str
) -> None:
    async def returns(ctx: awa.JobContext) -> Any:
        return UNSTORABLE[name]

    state, row = await hostile_job(database_url, raw, returns)
    assert state == "completed" and "unserialisable_result" in row["result"]


@pytest.mark.parametrize(
    "result", [deep(5000), {"n": 10**5000}], ids=["deep", "int-beyond-4300-digits"]
)
async def test_result_whose_repr_fails_does_not_kill_the_runtime(
    database_url: str, raw: asyncpg.Connection, result: Any
) -> None:
    async def returns(ctx: awa.JobContext) -> Any:
        return result

    state, row = await hostile_job(database_url, raw, returns)
    assert state == "completed" and "unserialisable_result" in row["result"]


async def test_unstorable_progress_or_delays_fail_only_that_job(
    database_url: str, raw: asyncpg.Connection
) -> None:
    cases: list[Callable[[awa.JobContext], Awaitable[Any]]] = []

    async def nan_progress(ctx: awa.JobContext) -> int:
        ctx.set_progress({"p": float("nan")})
        return 1

    async def deep_progress(ctx: awa.JobContext) -> int:
        ctx.set_progress(deep(5000))
        return 1

    async def huge_snooze(ctx: awa.JobContext) -> Any:
        return awa.Snooze(10**10)

    async def nan_retry(ctx: awa.JobContext) -> Any:
        return awa.RetryAfter(float("nan"))

    cases = [nan_progress, deep_progress, huge_snooze, nan_retry]
    for behaviour in cases:
        await raw.execute("TRUNCATE awa.jobs, awa.jobs_done, awa.job_unique")
        state, row = await hostile_job(database_url, raw, behaviour)
        assert state == "failed" and row["errors"], behaviour.__name__


# ------------------------------------------------------------- messages of failures


@pytest.mark.parametrize(
    "how",
    ["raise-nul", "raise-surrogate", "cancel-nul", "retry-after-nul"],
)
async def test_failure_text_postgres_cannot_store_does_not_kill_the_runtime(
    database_url: str, raw: asyncpg.Connection, how: str
) -> None:
    async def fails(ctx: awa.JobContext) -> Any:
        if how == "raise-nul":
            raise ValueError("cannot parse b'\x00\x01'")
        if how == "raise-surrogate":
            raise ValueError("bad name \udcff")
        if how == "cancel-nul":
            return awa.Cancel("reason\x00")
        return awa.RetryAfter(0, "again\x00")

    state, row = await hostile_job(database_url, raw, fails)
    assert state in ("failed", "cancelled") and row["errors"]


# ------------------------------------------------------ rows other producers wrote


UNDECODABLE_ARGS = {
    "nested-5000-deep": "(repeat('[', 5000) || repeat(']', 5000))::jsonb",
    "nested-in-an-object": "('{\"a\": ' || repeat('[', 5000) || repeat(']', 5000) || '}')::jsonb",
}


@pytest.mark.parametrize("args_sql", list(UNDECODABLE_ARGS.values()), ids=list(UNDECODABLE_ARGS))
async def test_args_python_cannot_decode_fail_only_that_job(
    database_url: str, raw: asyncpg.Connection, args_sql: str
) -> None:
    async def never(ctx: awa.JobContext) -> None:
        raise AssertionError("this handler must not run")

    state, row = await hostile_job(
        database_url, raw, never, tamper=f"UPDATE awa.jobs SET args = {args_sql} WHERE id = $1"
    )
    assert state == "failed" and "args cannot be decoded" in row["errors"]
    assert "recursion limit" in row["errors"] and "must not run" not in row["errors"]
    assert re.search(r"job \d+ \(kind 'hostile'\) was not run", row["errors"])


async def test_args_python_cannot_decode_read_back_as_a_marker(
    database_url: str, raw: asyncpg.Connection
) -> None:
    """Reading such a job (get_job, list_jobs, a unique-key duplicate on the text path)
    gives a job whose args are a marker saying why, never a raw RecursionError."""
    deep_args = UNDECODABLE_ARGS["nested-5000-deep"]
    async with awa.Client(database_url) as client:
        job = await client.insert("hostile", {"n": 1}, unique_key="poisoned")
        await raw.execute(f"UPDATE awa.jobs SET args = {deep_args} WHERE id = $1", job.id)
        for read in (
            await client.get_job(job.id),
            (await client.list_jobs(kind="hostile"))[0],
            await client.insert("hostile", {"n": 2}, unique_key="poisoned"),
        ):
            assert read.id == job.id
            assert isinstance(read.args, UndecodableJson)
            assert "recursion limit" in repr(read.args) and "recursion limit" in str(read.args)


async def test_args_with_integers_beyond_python_int_limit_decode_exactly(
    database_url: str, raw: asyncpg.Connection
) -> None:
    """int() refuses more than 4300 digits; such an integer arrives as an exact Decimal."""
    seen: list[Any] = []

    async def handler(ctx: awa.JobContext) -> str:
        seen.append(ctx.args["n"])
        return "ran"

    state, _ = await hostile_job(
        database_url,
        raw,
        handler,
        tamper="UPDATE awa.jobs SET args = '{\"n\": 1e5000}'::jsonb WHERE id = $1",
    )
    assert state == "completed"
    assert seen == [Decimal("1" + "0" * 5000)]


@pytest.mark.parametrize(
    "metadata_sql",
    ["(repeat('[', 5000) || repeat(']', 5000))::jsonb", "'[1, 2]'::jsonb", "'\"text\"'::jsonb"],
    ids=["nested-5000-deep", "array", "string"],
)
async def test_metadata_that_is_not_an_object_fails_only_that_job(
    database_url: str, raw: asyncpg.Connection, metadata_sql: str
) -> None:
    async def never(ctx: awa.JobContext) -> None:
        raise AssertionError("this handler must not run")

    tamper = f"UPDATE awa.jobs SET metadata = {metadata_sql} WHERE id = $1"
    state, row = await hostile_job(database_url, raw, never, tamper=tamper)
    assert state == "failed" and "metadata cannot be decoded" in row["errors"]


@pytest.mark.parametrize(
    "errors_sql",
    ["(repeat('[', 5000) || repeat(']', 5000))::jsonb", "'5'::jsonb", "'{\"a\": 1}'::jsonb"],
    ids=["nested-5000-deep", "number", "object"],
)
async def test_errors_history_that_is_not_an_array_does_not_stop_the_job(
    database_url: str, raw: asyncpg.Connection, errors_sql: str
) -> None:
    async def handler(ctx: awa.JobContext) -> str:
        assert ctx.job.errors[0]["kind"] == "unreadable"
        return "ran"

    tamper = f"UPDATE awa.jobs SET errors = {errors_sql} WHERE id = $1"
    state, _ = await hostile_job(database_url, raw, handler, tamper=tamper)
    assert state == "completed"


@pytest.mark.parametrize("via", ["client-insert", "sql"])
async def test_run_at_minus_infinity_does_not_kill_the_runtime(
    database_url: str, raw: asyncpg.Connection, via: str
) -> None:
    async def handler(ctx: awa.JobContext) -> str:
        return "ran"

    if via == "sql":
        state, _ = await hostile_job(
            database_url,
            raw,
            handler,
            tamper="UPDATE awa.jobs SET run_at = '-infinity' WHERE id = $1",
        )
        assert state == "completed"
        return
    client = awa.Client(database_url)
    client.handler("hostile")(handler)
    async with client:
        try:
            job = await client.insert("hostile", run_at=datetime.min.replace(tzinfo=UTC))
        except awa.ValidationError:
            return  # refused at insert: fine

        async def settled() -> bool:
            return (await states(raw, job.id))[0] in TERMINAL

        await run_until_settled(client, settled)
