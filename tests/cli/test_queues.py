"""``awa queues``, ``awa queues pause NAME`` and ``awa queues resume NAME`` as the real
command in a child process (``python -m awa``) on a real PostgreSQL (ADR 024): the pause is
stored and shown by the listing (table column and ``--json`` field), the listing with no
verb keeps its old shape, and a bad name is one ``awa: error:`` line, never a traceback."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import anyio

import awa
from support.cli_process import awa as run_awa
from support.cli_process import error_lines


async def awa_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return await anyio.to_thread.run_sync(lambda: run_awa(*argv))


def column(text: str, header: str) -> list[tuple[str, str, str]]:
    """(queue, state, cell under ``header``) of each row of ``awa queues``' table."""
    head, _rule, *rows = text.splitlines()
    start = head.index(header)
    return [(row.split()[0], row.split()[1], row[start:].strip()) for row in rows]


async def test_pause_and_resume_through_the_cli(database_url: str) -> None:
    url = ("--database-url", database_url)
    async with awa.Client(database_url) as client:
        await client.insert("work", queue="mail")
        await client.insert("work", queue="other")

        paused = await awa_cli("queues", "pause", "mail", "--reason", "smtp down", *url)
        assert paused.returncode == 0, paused.stderr
        assert "paused queue 'mail'" in paused.stdout and "smtp down" in paused.stdout
        [stored] = await client.queues.list()
        assert (stored.queue, stored.reason) == ("mail", "smtp down")

        again = await awa_cli("queues", "pause", "mail", "--json", *url)
        assert again.returncode == 0, again.stderr
        shown: dict[str, Any] = json.loads(again.stdout)
        assert shown["created"] is False and shown["reason"] == "smtp down"

        listing = await awa_cli("queues", *url)
        assert listing.returncode == 0, listing.stderr
        assert column(listing.stdout, "paused") == [
            ("mail", "available", "paused"),
            ("other", "available", ""),
        ]
        as_json = await awa_cli("queues", "--json", *url)
        assert as_json.returncode == 0, as_json.stderr
        assert {(r["queue"], r["paused"]) for r in json.loads(as_json.stdout)} == {
            ("mail", True),
            ("other", False),
        }

        resumed = await awa_cli("queues", "resume", "mail", "--json", *url)
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout) == {"queue": "mail", "resumed": True}
        assert await client.queues.list() == []

        not_paused = await awa_cli("queues", "resume", "mail", *url)
        assert not_paused.returncode == 0, not_paused.stderr
        assert "was not paused" in not_paused.stdout


async def test_the_listing_without_a_verb_keeps_its_shape(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        await client.insert("work", queue="mail")
    listing = await awa_cli("queues", "--json", "--database-url", database_url)
    assert listing.returncode == 0, listing.stderr
    [row] = json.loads(listing.stdout)
    assert row["queue"] == "mail" and row["state"] == "available" and row["count"] == 1
    assert set(row) == {"queue", "state", "count", "lag_s", "paused"}


async def test_an_unknown_or_empty_queue_name_is_one_error_line(database_url: str) -> None:
    for name in ("no-such-queue", ""):
        result = await awa_cli("queues", "pause", name, "--database-url", database_url)
        assert result.returncode == 2
        [line] = error_lines(result.stderr)
        assert line.startswith("awa: error: invalid queue="), line
        assert "Traceback" not in result.stderr
    async with awa.Client(database_url) as client:
        assert await client.queues.list() == []
