"""The maintenance-only role, the bounded ``tick()``, startup recovery and the runtime
lifecycle (idempotent and concurrent starts, shutdown versus abort), on a real PostgreSQL.

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
from datetime import timedelta

import anyio
import anyio.lowlevel
import asyncpg
import pytest

import awa
import awa.maintenance
from awa.config import RecoveryPolicy
from awa.errors import StartupRecoveryError
from awa.store.maintenance import Presence
from support.chaos import wait_for
from support.maintenance import lock_holders, maint_config

KINDS = ("k_available", "k_scheduled", "k_retryable", "k_stale", "k_orphan", "k_waiting")


def counting_client(url: str, calls: Counter[str]) -> awa.Client:
    """A client with a handler for every seeded kind, each counting its calls."""
    client = awa.Client(url)
    for kind in KINDS:

        async def handler(ctx: awa.JobContext, _kind: str = kind) -> None:
            calls[_kind] += 1

        client.handler(kind)(handler)
    return client


async def seed(raw: asyncpg.Connection, kind: str, set_clause: str, max_attempts: int = 5) -> int:
    """Insert a job of ``kind`` and move it into a state with SQL."""
    job_id: int = await raw.fetchval(
        "INSERT INTO awa.jobs (kind, queue, state, priority, original_priority, max_attempts,"
        " run_at, created_at) VALUES ($1, 'default', 'available', 2, 2, $2, now(), now())"
        " RETURNING id",
        kind,
        max_attempts,
    )
    await raw.execute(f"UPDATE awa.jobs SET {set_clause} WHERE id = $1", job_id)
    return job_id


RUNNING_BY = (
    "state = 'running', attempt = 1, run_lease = 5, claimed_by = '{who}', "
    "attempted_at = now() - interval '2 min', heartbeat_at = now() - interval '{beat}'"
)


async def job_state(raw: asyncpg.Connection, job_id: int) -> str:
    return str(await raw.fetchval("SELECT state FROM awa.all_jobs WHERE id = $1", job_id))


# ------------------------------------------------------------------- maintenance-only role


async def test_maintenance_only_runtime_maintains_but_never_executes(
    database_url: str, raw: asyncpg.Connection
) -> None:
    ids = {
        "available": await seed(raw, "k_available", "state = 'available'"),
        "scheduled": await seed(
            raw, "k_scheduled", "state = 'scheduled', run_at = now() + interval '1 s'"
        ),
        "retryable": await seed(
            raw, "k_retryable", "state = 'retryable', attempt = 1, run_at = now() - interval '1 s'"
        ),
        "waiting": await seed(
            raw,
            "k_waiting",
            "state = 'waiting_external', attempt = 1, run_lease = 2, claimed_by = 'gone', "
            "attempted_at = now() - interval '1 min', callback_id = gen_random_uuid(), "
            "callback_timeout_at = now() + interval '1 s'",
        ),
    }
    # A hung-but-connected holder: it keeps its presence lock, so only staleness rescues it.
    hung = await Presence.acquire(database_url, "hung-runtime")
    try:
        ids["stale"] = await seed(raw, "k_stale", RUNNING_BY.format(who="hung-runtime", beat="1 h"))
        await raw.execute(
            "INSERT INTO awa.runtimes (instance_id, hostname, pid, role, queues, kinds, "
            "started_at, last_seen_at) VALUES ('hung-runtime', 'h', 1, 'worker', '{}', '{}', "
            "now(), now())"
        )
        calls: Counter[str] = Counter()
        client = counting_client(database_url, calls)
        config = maint_config(heartbeat_staleness=1.0, intervals={"promote_scheduled": 0.2})
        async with (
            client,
            awa.Runtime(
                client,
                awa.RuntimeConfig(queues={"default": 10}),
                role="maintenance",
                maintenance=config,
            ) as runtime,
        ):
            assert runtime.dispatchers == []
            assert runtime.queues == {}
            expected = {
                "scheduled": "available",
                "retryable": "available",
                "waiting": "available",
                "stale": "available",
            }

            async def settled() -> bool:
                states = {name: await job_state(raw, ids[name]) for name in expected}
                return states == expected

            await wait_for(settled, timeout=30)
            row = await raw.fetchrow(
                "SELECT role, queues, kinds FROM awa.runtimes WHERE instance_id = $1",
                runtime.instance_id,
            )
            assert row["role"] == "maintenance"
            assert json.loads(row["queues"]) == {}
            # Let a few more claim-worthy intervals pass: still nothing may be claimed.
            await anyio.sleep(0.5)
            assert calls == Counter()
            jobs = await raw.fetch("SELECT id, state, claimed_by, attempt FROM awa.jobs")
            assert {r["state"] for r in jobs} == {"available"}
            assert all(r["claimed_by"] != runtime.instance_id for r in jobs)
            available = next(r for r in jobs if r["id"] == ids["available"])
            assert available["attempt"] == 0 and available["claimed_by"] is None
    finally:
        await hung.close()
    assert calls == Counter()


async def test_role_is_validated(database_url: str) -> None:
    client = awa.Client(database_url)
    with pytest.raises(awa.ConfigError, match="role"):
        awa.Runtime(client, role="dispatcher")
    with pytest.raises(awa.ConfigError, match="nothing"):
        awa.Runtime(client, role="maintenance", run_maintenance=False)


async def test_leadership_loss_during_maintenance_only_run(
    database_url: str, raw: asyncpg.Connection
) -> None:
    client = awa.Client(database_url)
    async with client, awa.Runtime(client, role="maintenance", maintenance=maint_config()) as rt:
        assert rt.leader is not None
        await wait_for(lambda: rt.leader is not None and rt.leader.is_leader)
        (pid,) = await lock_holders(raw)
        await raw.execute("SELECT pg_terminate_backend($1)", pid)
        await wait_for(
            lambda: rt.leader is not None and rt.leader.terms == 2 and rt.leader.is_leader
        )
        job_id = await seed(raw, "k_scheduled", "state = 'scheduled', run_at = now()")
        await wait_for(lambda: _is(raw, job_id, "available"))


async def _is(raw: asyncpg.Connection, job_id: int, state: str) -> bool:
    return await job_state(raw, job_id) == state


# ------------------------------------------------------------------------------- tick()


async def test_tick_runs_each_due_branch_once_and_releases_leadership(
    database_url: str, raw: asyncpg.Connection
) -> None:
    job_id = await seed(raw, "k_scheduled", "state = 'scheduled', run_at = now() - interval '1 s'")
    client = awa.Client(database_url)
    async with client:
        runtime = awa.Runtime(client, role="maintenance", maintenance=maint_config())
        report = await runtime.tick()
        assert report.leader and report.held_by == runtime.instance_id
        assert all(b.ran for b in report.branches)
        assert {b.branch for b in report.branches} == {
            cls.name for cls in awa.maintenance.BUILTIN_BRANCHES
        }
        promote = next(b for b in report.branches if b.branch == "promote_scheduled")
        assert promote.rows == {"promoted": 1} and promote.error is None
        assert await job_state(raw, job_id) == "available"
        assert await lock_holders(raw) == []  # released
        assert runtime.state == "new"  # tick starts no long-lived task

        again = await runtime.tick()
        # Nothing has been due since: every default interval is ≥ 1 s … except that a slow
        # machine may cross the 1 s of rescue_stale_heartbeats; the 60 s branches cannot.
        not_due = {b.branch for b in again.branches if not b.ran}
        assert {"cleanup", "rotate", "refresh_admin_metadata", "priority_aging"} <= not_due

        forced = await runtime.tick(force=True)
        assert all(b.ran for b in forced.branches)
        runs = await raw.fetchval(
            "SELECT runs FROM awa.maintenance_health WHERE branch = 'cleanup'"
        )
        assert runs == 2  # accumulated over the two ticks that ran it


async def test_tick_does_nothing_while_another_process_leads(
    database_url: str, raw: asyncpg.Connection
) -> None:
    leader_client = awa.Client(database_url)
    tick_client = awa.Client(database_url)
    async with (
        leader_client,
        tick_client,
        awa.Runtime(leader_client, role="maintenance", maintenance=maint_config()) as leader,
    ):
        await wait_for(lambda: leader.leader is not None and leader.leader.is_leader)
        await wait_for(lambda: raw.fetchval("SELECT instance_id FROM awa.maintenance_leader"))
        report = await awa.Runtime(tick_client, role="maintenance").tick(wait=0.3)
        assert not report.leader
        assert report.held_by == leader.instance_id
        assert report.branches == []
        assert report.as_dict()["held_by"] == leader.instance_id
        assert leader.leader is not None and leader.leader.is_leader


def test_cli_maintenance_tick_and_run_help(database_url: str) -> None:
    base = [sys.executable, "-m", "awa.cli.main", "--database-url", database_url]
    out = subprocess.run(
        [*base, "maintenance", "tick", "--json"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["leader"] is True
    assert {b["branch"] for b in report["branches"]} >= {"promote_scheduled", "cleanup"}
    helptext = subprocess.run(
        [*base, "maintenance", "run", "--help"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "NEVER claims or executes jobs" in helptext
    assert "still" in helptext and "awa worker" in helptext


# ---------------------------------------------------------------------- startup recovery


async def test_ready_start_pages_through_jobs_of_dead_runtimes(
    database_url: str, raw: asyncpg.Connection
) -> None:
    await raw.execute(
        "INSERT INTO awa.jobs (kind, queue, state, priority, original_priority, max_attempts,"
        " run_at, created_at, attempt, run_lease, claimed_by, attempted_at, heartbeat_at)"
        " SELECT 'k_orphan', 'default', 'running', 2, 2, 5, now(), now(), 1, 1,"
        " 'dead-' || (g % 7), now() - interval '1 min', now() FROM generate_series(1, 1250) g"
    )
    # A hung runtime: presence held, liveness row expired. And a healthy one: both held.
    hung = await Presence.acquire(database_url, "hung")
    healthy = await Presence.acquire(database_url, "healthy")
    try:
        for who, seen in (("hung", timedelta(hours=1)), ("healthy", timedelta(0))):
            await raw.execute(
                "INSERT INTO awa.runtimes (instance_id, hostname, pid, role, queues, kinds,"
                " started_at, last_seen_at) VALUES ($1, 'h', 1, 'worker', '{}', '{}', now(),"
                " now() - $2::interval)",
                who,
                seen,
            )
        hung_job = await seed(raw, "k_stale", RUNNING_BY.format(who="hung", beat="0 s"))
        healthy_job = await seed(raw, "k_stale", RUNNING_BY.format(who="healthy", beat="0 s"))
        client = awa.Client(database_url)
        config = awa.RuntimeConfig(
            queues={}, startup_recovery=RecoveryPolicy(page_size=100, delay=0.05)
        )
        async with client, awa.Runtime(client, config, run_maintenance=False) as runtime:
            assert runtime.recovery is not None
            assert runtime.recovery.requeued == 1251
            assert runtime.recovery.pages >= 13  # 1,250 orphans in pages of 100
            assert runtime.recovery.attempts == 1
            states = dict(
                await raw.fetch("SELECT state::text, count(*) FROM awa.jobs GROUP BY state")
            )
            assert states == {"available": 1251, "running": 1}
            assert await job_state(raw, hung_job) == "available"
            assert await job_state(raw, healthy_job) == "running"
            errors = await raw.fetchval("SELECT errors FROM awa.jobs WHERE id = $1", hung_job)
            assert "liveness expired" in errors
    finally:
        await hung.close()
        await healthy.close()


async def test_ready_start_cancels_orphans_an_operator_asked_to_cancel(
    database_url: str, raw: asyncpg.Connection
) -> None:
    """A dead runtime's attempts with a pending cancel request end cancelled, not re-run,
    and a page made only of them does not stop recovery's paging."""
    await raw.execute(
        "INSERT INTO awa.jobs (kind, queue, state, priority, original_priority, max_attempts,"
        " run_at, created_at, attempt, run_lease, claimed_by, attempted_at, heartbeat_at,"
        " cancel_requested, cancel_reason)"
        " SELECT 'k_orphan', 'default', 'running', 2, 2, 5, now(), now(), 1, 1, 'dead',"
        " now() - interval '1 min', now(), true, 'operator said stop'"
        " FROM generate_series(1, 250)"
    )
    client = awa.Client(database_url)
    config = awa.RuntimeConfig(
        queues={}, startup_recovery=RecoveryPolicy(page_size=100, delay=0.05)
    )
    async with client, awa.Runtime(client, config, run_maintenance=False) as runtime:
        assert runtime.recovery is not None
        assert (runtime.recovery.cancelled, runtime.recovery.requeued) == (250, 0)
    assert await raw.fetchval("SELECT count(*) FROM awa.jobs") == 0
    rows = await raw.fetch("SELECT state::text, errors FROM awa.jobs_done")
    assert {r["state"] for r in rows} == {"cancelled"} and len(rows) == 250
    assert all("operator said stop" in r["errors"] for r in rows)


async def _hold_jobs_lock(url: str, release: anyio.Event, locked: anyio.Event) -> None:
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE awa.jobs IN ACCESS EXCLUSIVE MODE")
            locked.set()
            await release.wait()
    finally:
        await conn.close()


async def test_ready_start_recovery_raises_after_exhausting_retries(database_url: str) -> None:
    release, locked = anyio.Event(), anyio.Event()
    client = awa.Client(database_url)
    policy = RecoveryPolicy(attempts=3, delay=0.05, timeout=0.3)
    async with client, anyio.create_task_group() as tg:
        tg.start_soon(_hold_jobs_lock, database_url, release, locked)
        await locked.wait()
        runtime = awa.Runtime(
            client, awa.RuntimeConfig(queues={}, startup_recovery=policy), run_maintenance=False
        )
        with pytest.raises(StartupRecoveryError) as info:
            await runtime.start()
        assert info.value.attempts == 3
        assert runtime.state == "stopped"
        release.set()
    # Nothing was left behind: the presence lock and the pool are gone.
    conn = await asyncpg.connect(database_url)
    try:
        held = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2"
        )
        assert held == 0
    finally:
        await conn.close()


async def test_ready_start_recovery_is_retried_until_it_succeeds(database_url: str) -> None:
    release, locked = anyio.Event(), anyio.Event()
    client = awa.Client(database_url)
    policy = RecoveryPolicy(attempts=20, delay=0.05, timeout=0.3)
    runtime = awa.Runtime(
        client, awa.RuntimeConfig(queues={}, startup_recovery=policy), run_maintenance=False
    )
    async with client, anyio.create_task_group() as tg:
        tg.start_soon(_hold_jobs_lock, database_url, release, locked)
        await locked.wait()

        async def release_later() -> None:
            await anyio.sleep(0.8)
            release.set()

        tg.start_soon(release_later)
        await runtime.start()
        assert runtime.recovery is not None and runtime.recovery.attempts > 1
        await runtime.shutdown()


# -------------------------------------------------------------------------- lifecycle


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
            await wait_for(lambda: _is(raw, job.id, "completed"), timeout=20)
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
