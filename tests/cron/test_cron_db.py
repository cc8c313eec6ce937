"""Cron through its surfaces, on a real PostgreSQL: declarations and their errors, a runtime
publishing its schedules and firing them, pause/resume and ``awa cron list``.

The branches themselves are tested in ``tests/maintenance/branches/test_cron_sync.py`` and
``test_cron_evaluate.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

import anyio
import asyncpg
import pytest

import awa
from awa.config import MaintenanceConfig
from awa.cron import CronTable
from awa.maintenance.branches.cron_evaluate import CronEvaluate
from awa.store import Store
from support.cron_world import T0, every_10s, sync
from support.store_world import ctx_for


async def test_runtime_publishes_its_declarations_at_start(
    database_url: str, raw: asyncpg.Connection
) -> None:
    client = awa.Client(database_url)
    client.schedule("hourly", "0 * * * *", "report", queue="reports", overlap="skip")
    async with client, awa.Runtime(client, awa.RuntimeConfig(queues={}), run_maintenance=False):
        row = await raw.fetchrow("SELECT * FROM awa.cron_schedules WHERE name = 'hourly'")
        assert row is not None
        assert (row["queue"], row["overlap"], row["misfire"]) == ("reports", "skip", "skip")


def test_declaration_errors_name_the_field() -> None:
    table = CronTable()
    with pytest.raises(awa.ValidationError, match="expression"):
        table.add("x", "61 * * * *", "k")
    with pytest.raises(awa.ValidationError, match="timezone"):
        table.add("x", "* * * * *", "k", timezone="Mars/Olympus")
    with pytest.raises(awa.ValidationError, match="misfire"):
        table.add("x", "* * * * *", "k", misfire="sometimes")
    with pytest.raises(awa.ValidationError, match="overlap"):
        table.add("x", "* * * * *", "k", overlap="maybe")
    table.add("x", "* * * * *", "k")
    with pytest.raises(awa.ValidationError, match="already exists"):
        table.add("x", "* * * * *", "k")


async def test_runtime_fires_cron_jobs_and_handler_sees_the_instant(database_url: str) -> None:
    seen: list[str] = []
    done = anyio.Event()
    client = awa.Client(database_url)
    client.schedule("every_second", "* * * * * *", "beat")

    @client.handler("beat")
    async def beat(ctx: awa.JobContext) -> None:
        seen.append(ctx.job.metadata["awa.cron"]["scheduled_at"])
        if len(seen) >= 2:
            done.set()

    config = MaintenanceConfig(startup_jitter=0, election_interval=0.2)
    async with client, awa.Runtime(client, maintenance=config):
        with anyio.fail_after(30):
            await done.wait()
    assert len(seen) == len(set(seen))
    for text in seen:
        assert datetime.fromisoformat(text).microsecond == 0  # the scheduled instant


# ------------------------------------------------------------------- operator surfaces


async def test_pause_resume_and_cli_list(
    database_url: str, mstore: Store, raw: asyncpg.Connection
) -> None:
    clock = awa.FakeClock(T0)
    await sync(mstore, clock, every_10s())
    client = awa.Client(database_url)
    async with client:
        await client.pause_schedule("tick")
        clock.advance(30)
        result = await CronEvaluate().run_once(ctx_for(mstore, clock))
        assert result.rows["fired"] == 0
        with pytest.raises(awa.AwaError, match="no cron schedule named 'nope'"):
            await client.pause_schedule("nope")
        await client.resume_schedule("tick")
    command = [sys.executable, "-m", "awa.cli.main", "--database-url", database_url]
    out = await anyio.to_thread.run_sync(
        lambda: subprocess.run(
            [*command, "cron", "list", "--json"],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
    )
    assert out.returncode == 0, out.stderr
    (listed,) = json.loads(out.stdout)
    assert listed["name"] == "tick" and listed["operator_paused"] is False
    assert {"last_success_at", "last_fire_at", "next_fire_at", "missed_total"} <= set(listed)
