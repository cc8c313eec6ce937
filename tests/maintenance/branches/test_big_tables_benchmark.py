"""``benchmarks/big_tables.py`` end to end with tiny numbers: it builds its data set, runs
every hygiene branch, claims on both queues and beats heartbeats, and writes its JSON (no
timing is asserted; the figures come from the full run, see benchmarks/README.md)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

BENCHMARK = Path(__file__).resolve().parents[3] / "benchmarks" / "big_tables.py"


async def _drop(server_url: str, name: str) -> None:
    admin = await asyncpg.connect(server_url)
    try:
        exists = await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name)
        assert exists == 1, f"the benchmark named a database that does not exist: {name!r}"
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def test_the_benchmark_runs_with_tiny_numbers(tmp_path: Path, server_url: str) -> None:
    env = {**os.environ, "AWA_DATABASE_URL": server_url}
    result = subprocess.run(
        [sys.executable, str(BENCHMARK), "--history", "20000", "--live", "2000",
         "--unhandled", "2000", "--stock", "300", "--runs", "1", "--claims", "3", "--rebuild",
         "--output-dir", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    payload = json.loads((tmp_path / "big_tables-latest.json").read_text())
    asyncio.run(_drop(server_url, payload["database"]))
    assert {"queue_stats", "refresh_admin_metadata", "priority_aging", "cleanup", "rotate"} <= set(
        payload["hygiene"]
    )
    assert payload["heartbeat"]["updates"] == 2000
    assert set(payload["claims"]) == {"with_unhandled_backlog", "without"}
    assert payload["queue_counts"]["same_rows"]
    assert "hygiene branch" in result.stdout
