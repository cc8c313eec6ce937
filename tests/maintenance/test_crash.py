"""Crash rescue end to end: a worker process killed with SIGKILL while holding running jobs;
another runtime (with maintenance) re-runs them within seconds.

The killed process also campaigns for maintenance leadership (and usually leads), so the
survivor must both take leadership over and rescue the orphans through the presence-lock
signal (not the 30 s heartbeat backstop).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import asyncpg

import awa
from awa.config import MaintenanceConfig

JOBS = 5

#: The victim: ``python -m support.hang_worker URL`` (a handler that never returns).
WORKER = [sys.executable, "-m", "support.hang_worker"]
TESTS = Path(__file__).resolve().parents[1]


async def test_sigkilled_worker_jobs_are_rescued_and_rerun(
    database_url: str, raw: asyncpg.Connection
) -> None:
    client = awa.Client(database_url)
    async with client:
        ids = {job.id for job in [await client.insert("hang", {"n": i}) for i in range(JOBS)]}
    proc = await anyio.open_process(
        [*WORKER, database_url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(TESTS)},
    )
    try:
        with anyio.fail_after(30):
            while True:
                running = await raw.fetch(
                    "SELECT id, claimed_by FROM awa.jobs WHERE state = 'running'"
                )
                if len(running) == JOBS:
                    break
                assert proc.returncode is None, "worker process exited early"
                await anyio.sleep(0.05)
        holders = {r["claimed_by"] for r in running}
        assert len(holders) == 1
        (victim,) = holders
        assert (
            await raw.fetchval("SELECT pid FROM awa.runtimes WHERE instance_id = $1", victim)
            == proc.pid
        )
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        with anyio.fail_after(10):
            assert await proc.wait() == -signal.SIGKILL
    finally:
        if proc.returncode is None:
            proc.kill()
            with anyio.fail_after(10):
                await proc.wait()
        await proc.aclose()

    survivor = awa.Client(database_url)
    reran: list[int] = []

    @survivor.handler("hang")
    async def finish(ctx: awa.JobContext) -> str:
        reran.append(ctx.job.id)
        return "recovered"

    maintenance = MaintenanceConfig(
        startup_jitter=0, election_interval=0.2, leader_check_interval=0.2
    )
    async with survivor:
        runtime = awa.Runtime(
            survivor, awa.RuntimeConfig(queues={"default": 10}), maintenance=maintenance
        )
        async with runtime:
            with anyio.fail_after(30):
                while True:
                    finished = await raw.fetchval(
                        "SELECT count(*) FROM awa.jobs_done WHERE state = 'completed'"
                    )
                    if finished >= JOBS:
                        break
                    await anyio.sleep(0.02)
            recovered_in = time.monotonic() - killed_at
            assert runtime.leader is not None and runtime.leader.is_leader

    print(f"\ncrash rescue: {JOBS} jobs re-run {recovered_in:.2f}s after SIGKILL")
    assert recovered_in < 10.0
    assert sorted(reran) == sorted(ids)
    rows = await raw.fetch("SELECT * FROM awa.jobs_done ORDER BY id")
    assert {r["id"] for r in rows} == ids
    for row in rows:
        assert row["state"] == "completed"
        assert json.loads(row["result"]) == "recovered"
        assert row["attempt"] == 2
        assert row["claimed_by"] == runtime.instance_id
        rescued = [e for e in json.loads(row["errors"]) if e.get("kind") == "rescued"]
        assert len(rescued) == 1
        assert rescued[0]["claimed_by"] == victim
        assert rescued[0]["attempt"] == 1
        assert "presence" in rescued[0]["message"]
    assert await raw.fetchval("SELECT count(*) FROM awa.jobs") == 0
