"""``benchmarks/long_horizon.py --backlog`` end to end with a tiny backlog and a short run:
the backlog is built once into a template database (``--prepare-backlog``), the run copies
it instead of building again, every job of the workload is accounted for, and the
per-second queue depth counts the workload's jobs only (else the run could never drain
with the backlog's live jobs in the table). Counts only; the figures come from the
60-minute runs in benchmarks/README.md."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from awa.db.testdb import drop_database

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "long_horizon.py"
SIZES = {"history": 20_000, "live": 3_000, "unique_keys": 700, "unhandled": 1_500}
FLAGS = [
    "--backlog-history", str(SIZES["history"]), "--backlog-live", str(SIZES["live"]),
    "--backlog-unique-keys", str(SIZES["unique_keys"]),
    "--backlog-unhandled", str(SIZES["unhandled"]),
]  # fmt: skip


def _run(args: list[str], cwd: Path, server_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWA_DATABASE_URL": server_url}
    return subprocess.run(
        [sys.executable, str(BENCHMARK), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )


async def _template_counts(server_url: str, name: str) -> dict[str, Any]:
    url = urlsplit(server_url)._replace(path=f"/{name}").geturl()
    conn = await asyncpg.connect(url)
    try:
        return {
            "unique_keys": await conn.fetchval("SELECT count(*) FROM awa.job_unique"),
            "unhandled": await conn.fetchval(
                "SELECT count(*) FROM awa.jobs"
                " WHERE queue = 'default' AND kind = 'nobody_handles_this'"
            ),
            "history_min": await conn.fetchval("SELECT count(*) FROM awa.jobs_done"),
        }
    finally:
        await conn.close()


def test_a_short_run_on_a_tiny_backlog_built_once(tmp_path: Path, server_url: str) -> None:
    prepared = _run(["--prepare-backlog", *FLAGS], tmp_path, server_url)
    assert prepared.returncode == 0, (prepared.stdout + prepared.stderr)[-4000:]
    template = prepared.stdout.split("backlog template ", 1)[1].split(":", 1)[0]
    try:
        result = _run(
            ["--backlog", *FLAGS, "--duration", "6s", "--lanes", "split", "--rate", "20",
             "--drain-timeout", "20", "--no-plots", "--label", "test",
             "--output-dir", str(tmp_path)],
            tmp_path, server_url,
        )  # fmt: skip
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-4000:]
        payload = json.loads((tmp_path / "long-horizon-test-latest.json").read_text())
        counts = asyncio.run(_template_counts(server_url, template))
    finally:
        asyncio.run(drop_database(server_url, template))

    backlog = payload["parameters"]["backlog"]
    assert backlog["template"] == template
    assert {k: backlog[k] for k in SIZES} == SIZES
    assert backlog["build_s"] is None  # built by --prepare-backlog, copied by the run
    assert counts["unique_keys"] == SIZES["unique_keys"]
    assert counts["unhandled"] == SIZES["unhandled"]
    # The ring holds the history, less the few burst jobs left live (one in 5,000).
    assert SIZES["history"] * 0.99 <= counts["history_min"] <= SIZES["history"]

    split = payload["modes"]["split"]
    start = split["backlog_live"]["start"]
    assert sum(start.values()) >= SIZES["live"] + SIZES["unhandled"]
    assert start["available"] >= SIZES["unhandled"]
    # Nobody handles the backlog's kinds: it is still there, live, at the end.
    assert sum(split["backlog_live"]["end"].values()) == sum(start.values())
    accounting = split["accounting"]
    assert accounting["inserted"] > 0
    assert (accounting["lost"], accounting["duplicated"], accounting["unexpected"]) == (0, 0, 0)
    # The workload drained although the backlog's jobs stay live: depth is the workload's.
    assert split["drained_after_s"] is not None
    assert accounting["live_at_end"] == {}
    assert split["id_floor"] > SIZES["history"]
