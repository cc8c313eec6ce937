"""``awa demo``: its figures cover this run's jobs only, every state is listed, and Ctrl-C
with ``--json`` still prints the summary. The real command runs as a child process against
a fresh database that already holds another producer's jobs (what a reused data directory
holds after an earlier demo): a figure that counted the whole database would include them.
"""

from __future__ import annotations

import json
import signal
from typing import Any

import asyncpg
import pytest

from awa.client import Client
from awa.model import JobState
from support.cli_process import awa, error_lines, spawn_awa

EARLIER = 30  # jobs another producer left in the demo's own queue, of a kind it handles


async def seed_earlier_run(database_url: str) -> None:
    async with Client(database_url) as client:
        await client.insert_many(
            [client.params("send_email", {"to": f"old{i}@example.com"}) for i in range(EARLIER)]
        )


async def total_jobs(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM awa.all_jobs"))
    finally:
        await conn.close()


def assert_scoped(summary: dict[str, Any]) -> None:
    run = summary["this_run"]
    assert set(run["states"]) == {s.value for s in JobState}  # zeros included
    assert sum(run["states"].values()) + run["not_found"] == run["inserted"]
    assert run["not_found"] == 0


async def test_a_normal_run_lists_every_state_and_only_its_own_jobs(database_url: str) -> None:
    await seed_earlier_run(database_url)
    result = awa("--database-url", database_url, "demo", "--duration", "2", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # stdout is the summary alone
    assert_scoped(summary)
    assert summary["interrupted"] is False and summary["signal"] is None
    states = summary["this_run"]["states"]
    assert states["cancelled"] == 0 and states["waiting_external"] == 0
    assert summary["this_run"]["inserted"] > 0
    assert await total_jobs(database_url) == EARLIER + summary["this_run"]["inserted"]
    # The worker served the earlier jobs too; its figure says so, this run's do not.
    assert summary["this_worker"]["claims"] >= EARLIER
    assert "this run: inserted=" in result.stderr  # progress went to stderr


async def test_sigint_with_json_prints_the_partial_summary_of_this_run(
    database_url: str,
) -> None:
    await seed_earlier_run(database_url)
    argv = ("--database-url", database_url, "demo", "--duration", "0", "--json")
    demo = spawn_awa(*argv, merge_stderr=False)
    try:
        assert demo.stderr is not None
        seen = []
        for line in demo.stderr:  # progress lines: jobs are flowing
            seen.append(line)
            if "this run: inserted=" in line:
                break
        else:
            pytest.fail(f"demo exited ({demo.wait()}) before any progress:\n{''.join(seen)}")
        demo.send_signal(signal.SIGINT)
        out, err = demo.communicate(timeout=60)
    finally:
        demo.kill()
        demo.wait()
    assert demo.returncode == 0, err
    assert "Traceback" not in err
    summary = json.loads(out)  # one JSON object, nothing else on stdout
    assert summary["interrupted"] is True and summary["signal"] == "SIGINT"
    assert_scoped(summary)
    inserted = summary["this_run"]["inserted"]
    assert inserted > 0
    assert await total_jobs(database_url) == EARLIER + inserted


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--rate", "0"), ("--rate", "nan"), ("--rate", "1e12"), ("--duration", "-1")],
)
def test_bad_rates_and_durations_are_usage_errors(flag: str, value: str) -> None:
    result = awa("--database-url", "postgresql://awa@127.0.0.1:1/awa", "demo", flag, value)
    assert result.returncode == 2
    assert error_lines(result.stderr)[-1].startswith("awa demo: error: argument")
    assert "Traceback" not in result.stderr
