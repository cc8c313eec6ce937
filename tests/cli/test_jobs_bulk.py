"""``awa jobs retry|cancel|discard`` by filter and ``awa jobs discard ID`` as the real command
in a child process (``python -m awa``) on a real PostgreSQL (ADR 032): a bulk run without
``--yes`` only says how many jobs it would touch; ``--yes`` acts; ``--confirm N`` is refused
(one ``awa: error:`` line, nothing done) when more match; the list takes the new filters."""

from __future__ import annotations

import json
import subprocess

import anyio
import pytest

import awa
from support.cli_process import awa as run_awa
from support.cli_process import error_lines


async def awa_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return await anyio.to_thread.run_sync(lambda: run_awa(*argv))


async def test_bulk_cancel_and_discard_by_filter_and_discard_one(database_url: str) -> None:
    url = ("--database-url", database_url)
    async with awa.Client(database_url) as client:
        slow = [await client.insert("later", {"i": i}, queue="slow", delay=3600) for i in range(3)]
        other = await client.insert("later", {}, queue="fast", delay=3600, tags=["blue"])

        dry = await awa_cli("jobs", "cancel", "--queue", "slow", *url)
        assert dry.returncode == 0, dry.stderr
        assert "would cancel 3 jobs (queue=slow)" in dry.stdout and "--yes" in dry.stdout
        assert {(await client.get_job(j.id)).state for j in slow} == {awa.JobState.SCHEDULED}

        refused = await awa_cli("jobs", "cancel", "--queue", "slow", "--confirm", "2", *url)
        assert refused.returncode != 0
        assert error_lines(refused.stderr) == [
            "awa: error: cancel: the filter now matches 3 jobs, more than the 2 confirmed; "
            "nothing was done"
        ]
        assert {(await client.get_job(j.id)).state for j in slow} == {awa.JobState.SCHEDULED}

        done = await awa_cli("jobs", "cancel", "--queue", "slow", "--yes", "--json", *url)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["acted"] == 3
        assert {(await client.get_job(j.id)).state for j in slow} == {awa.JobState.CANCELLED}

        listed = await awa_cli("jobs", "list", "--tag", "blue", "--json", *url)
        assert [j["id"] for j in json.loads(listed.stdout)] == [other.id]
        gone = await awa_cli("jobs", "discard", str(other.id), *url)
        assert gone.returncode == 0, gone.stderr
        with pytest.raises(awa.JobNotFound):
            await client.get_job(other.id)

        cleared = await awa_cli(
            "jobs", "discard", "--queue", "slow", "--state", "cancelled", "--confirm", "3", *url
        )
        assert cleared.returncode == 0, cleared.stderr
        assert "discard: 3 of 3 jobs" in cleared.stdout

        nothing = await awa_cli("jobs", "retry", *url)
        assert nothing.returncode != 0
        assert "give a job id or a filter" in error_lines(nothing.stderr)[0]
        bad = await awa_cli("jobs", "list", "--since", "noon", *url)
        assert error_lines(bad.stderr) == [
            "awa: error: invalid since='noon': expected an ISO 8601 instant"
        ]
