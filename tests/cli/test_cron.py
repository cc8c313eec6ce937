"""``awa cron list`` through the real entry point (``awa.cli.main``) on a real PostgreSQL:
each schedule's queue, as a table column and a ``--json`` field (issue 18: an operator could
not see that a schedule's jobs went to a queue no worker served)."""

from __future__ import annotations

import contextlib
import io
import json

import anyio
import asyncpg

import awa
from awa.cli.main import main
from awa.maintenance.branches.cron_sync import CronSync
from awa.store import Store
from support.store_world import ctx_for


def run_cli(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    return code, out.getvalue()


def column(text: str, header: str) -> dict[str, str]:
    """Schedule name -> the cell under ``header`` in ``awa cron list``'s table."""
    head, _rule, *rows = text.splitlines()
    names = head.split()
    start = head.index(header)
    following = names.index(header) + 1
    end = head.index(f"  {names[following]}", start) + 2 if following < len(names) else None
    return {row.split()[0]: row[start:end].strip() for row in rows}


async def test_cron_list_shows_each_schedules_queue(
    database_url: str, store: Store, raw: asyncpg.Connection
) -> None:
    client = awa.Client(database_url)
    client.schedule("digest", "0 8 * * *", "send_digest")
    client.schedule("bulk_digest", "0 9 * * *", "send_digest", queue="bulk")

    @client.handler("send_digest", queue="mail")
    async def send_digest(ctx: awa.JobContext) -> None:
        return None

    await CronSync(client.cron, "test").run_once(ctx_for(store))
    url = ["--database-url", database_url]

    code, text = await anyio.to_thread.run_sync(run_cli, [*url, "cron", "list"])
    assert code == 0, text
    assert column(text, "queue") == {"bulk_digest": "bulk", "digest": "mail"}
    assert column(text, "expression") == {"bulk_digest": "0 9 * * *", "digest": "0 8 * * *"}

    code, text = await anyio.to_thread.run_sync(run_cli, [*url, "cron", "list", "--json"])
    assert code == 0, text
    assert {s["name"]: s["queue"] for s in json.loads(text)} == {
        "bulk_digest": "bulk",
        "digest": "mail",
    }
