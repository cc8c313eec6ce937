"""The maintenance-only role and the bounded ``tick()``, on a real PostgreSQL.

Every wait is a poll under a generous ``fail_after``; no wall-clock duration is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import anyio
import anyio.lowlevel
import asyncpg
import pytest

import awa
import awa.maintenance
from awa.store.presence import Presence
from support.chaos import wait_for
from support.maintenance import lock_holders, maint_config
from support.runtime_world import RUNNING_BY, counting_client, in_state, job_state, seed

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
            assert row is not None
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
        await wait_for(lambda: in_state(raw, job_id, "available"))


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
