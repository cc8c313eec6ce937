"""The runtime lifecycle: idempotent and concurrent starts, start racing shutdown, a dropped
handle, shutdown versus abort, and what a start publishes; on a real PostgreSQL.

Every wait is a poll under a generous ``fail_after``; no wall-clock duration is asserted.
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import weakref
from collections import Counter

import anyio
import anyio.lowlevel
import asyncpg
import pytest

import awa
import awa.maintenance
from support.chaos import wait_for
from support.maintenance import maint_config
from support.runtime_world import in_state, job_state


async def test_concurrent_starts_make_one_runtime(
    database_url: str, raw: asyncpg.Connection
) -> None:
    client = awa.Client(database_url)
    async with client:
        runtime = awa.Runtime(client, maintenance=maint_config())
        results = await asyncio.gather(*(runtime.start() for _ in range(5)))
        try:
            assert all(r is runtime for r in results)
            assert await raw.fetchval("SELECT count(*) FROM awa.runtimes") == 1
            presence = await raw.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            assert presence == 1
            await wait_for(lambda: runtime.leader is not None and runtime.leader.is_leader)
            assert runtime.leader is not None and runtime.leader.terms == 1
            assert await runtime.start() is runtime
        finally:
            await runtime.shutdown()
        with pytest.raises(awa.RuntimeStateError):
            await runtime.start()


async def test_start_racing_shutdown_gets_a_clear_error(database_url: str) -> None:
    client = awa.Client(database_url)
    async with client:
        runtime = awa.Runtime(client, awa.RuntimeConfig(queues={}), run_maintenance=False)
        async with anyio.create_task_group() as tg:
            failures: list[BaseException] = []

            async def start() -> None:
                try:
                    await runtime.start()
                except awa.RuntimeStateError as exc:
                    failures.append(exc)

            tg.start_soon(start)
            await anyio.lowlevel.checkpoint()
            await runtime.shutdown()
        # Either the start lost the race (clear error) or it won and shutdown stopped it.
        assert runtime.state == "stopped"
        assert len(failures) <= 1
        with pytest.raises(awa.RuntimeStateError, match="stopped"):
            await runtime.start()


async def test_dropping_the_handle_does_not_stop_the_runtime(database_url: str) -> None:
    done = anyio.Event()
    client = awa.Client(database_url)

    @client.handler("k_available")
    async def handle(ctx: awa.JobContext) -> None:
        done.set()

    async def start_and_forget() -> weakref.ref[awa.Runtime]:
        runtime = awa.Runtime(client, run_maintenance=False)
        await runtime.start()
        return weakref.ref(runtime)

    async with client:
        ref = await start_and_forget()
        gc.collect()
        await anyio.sleep(0.05)
        gc.collect()
        runtime = ref()
        assert runtime is not None and runtime.state == "running"
        del runtime
        await client.insert("k_available", {})
        with anyio.fail_after(20):
            await done.wait()
        runtime = ref()
        assert runtime is not None
        await runtime.shutdown()


async def test_abort_loses_no_job_next_start_recovers_it(
    database_url: str, raw: asyncpg.Connection
) -> None:
    started, finished = anyio.Event(), Counter[str]()
    client = awa.Client(database_url)

    @client.handler("k_available")
    async def handle(ctx: awa.JobContext) -> None:
        if ctx.job.attempt == 1:
            started.set()
            await anyio.sleep_forever()
        finished["done"] += 1

    async with client:
        job = await client.insert("k_available", {})
        first = awa.Runtime(client, run_maintenance=False)
        await first.start()
        with anyio.fail_after(20):
            await started.wait()
        await anyio.sleep(0.6)  # older than crash_grace: a crash, not a claim in progress
        await first.abort()
        assert await job_state(raw, job.id) == "running"  # abort records nothing …
        second = awa.Runtime(client, run_maintenance=False)
        async with second:
            assert second.recovery is not None and second.recovery.requeued == 1  # … recovery does
            await wait_for(lambda: in_state(raw, job.id, "completed"), timeout=20)
        assert finished["done"] == 1


async def test_library_maintenance_publishes_declarations_pool_only_does_not(
    database_url: str, raw: asyncpg.Connection
) -> None:
    app = awa.Client(database_url)

    @app.handler("send_email", queue="mail", description="Sends one transactional email")
    async def send(ctx: awa.JobContext) -> None:
        raise AssertionError("a maintenance-only runtime never runs handlers")

    app.describe_queue("mail", "Outgoing email, rate-limited by the provider")
    app.schedule("digest", "0 8 * * *", "send_email", timezone="Europe/Paris")
    pool_only = awa.Client(database_url)
    async with pool_only, awa.Runtime(pool_only, role="maintenance", publish_declarations=False):
        assert await raw.fetchval("SELECT count(*) FROM awa.declarations") == 0
        assert await raw.fetchval("SELECT count(*) FROM awa.cron_schedules") == 0
    async with app, awa.Runtime(app, role="maintenance", maintenance=maint_config()) as rt:
        rows = {
            (r["type"], r["name"]): r for r in await raw.fetch("SELECT * FROM awa.declarations")
        }
        assert rows[("kind", "send_email")]["description"] == "Sends one transactional email"
        assert rows[("kind", "send_email")]["queue"] == "mail"
        assert rows[("queue", "mail")]["description"].startswith("Outgoing email")
        assert rows[("queue", "mail")]["declared_by"] == rt.instance_id
        schedule = await raw.fetchrow("SELECT * FROM awa.cron_schedules WHERE name = 'digest'")
        assert schedule is not None and schedule["timezone"] == "Europe/Paris"
    out = await anyio.to_thread.run_sync(
        lambda: subprocess.run(
            [
                sys.executable,
                "-m",
                "awa.cli.main",
                "--database-url",
                database_url,
                "catalog",
                "--json",
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
    )
    assert out.returncode == 0, out.stderr
    assert {(r["type"], r["name"]) for r in json.loads(out.stdout)} == set(rows)
