"""``examples/cron/schedules.py`` runs as a user runs it (``python schedules.py``) on a fresh
database: its runtime publishes both schedules as declared, its leader fires the
every-second one into its handler's queue, and its workers run the fires."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from support.examples import EXAMPLES, run_script

SCRIPT = EXAMPLES / "cron" / "schedules.py"


async def test_the_schedules_fire_and_their_jobs_run(
    empty_database_url: str, tmp_path: Path
) -> None:
    stdout, output = run_script(SCRIPT, empty_database_url, tmp_path, timeout=90)
    assert "pulsed for " in stdout, output[-4000:]

    conn = await asyncpg.connect(empty_database_url)
    try:
        schedules = {
            r["name"]: dict(r)
            for r in await conn.fetch(
                "SELECT name, expression, timezone, queue, misfire, catchup_window_s, overlap"
                " FROM awa.cron_schedules"
            )
        }
        fires = await conn.fetch(
            "SELECT state, queue FROM awa.all_jobs"
            " WHERE metadata -> 'awa.cron' ->> 'schedule' = 'pulse'"
        )
    finally:
        await conn.close()
    assert schedules["nightly-report"] == {
        "name": "nightly-report",
        "expression": "0 3 * * *",
        "timezone": "Europe/Berlin",
        "queue": "reports",
        "misfire": "catchup_latest",
        "catchup_window_s": 6 * 3600,
        "overlap": "skip",
    }
    assert schedules["pulse"]["queue"] == "reports"
    completed = [r for r in fires if r["state"] == "completed"]
    assert len(completed) >= 2, fires
    assert {r["queue"] for r in fires} == {"reports"}
