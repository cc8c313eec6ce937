"""``awa queues``: depth and lag per queue and state, through ``awa.admin`` over a connected
client's pool (``Admin.of``: an unmigrated database is refused with "run `awa migrate`")."""

from __future__ import annotations

import argparse

from awa.admin import Admin
from awa.cli.app import with_admin
from awa.cli.args import Verbs, reporter, watch_arg
from awa.cli.output import emit, table, watching

__all__ = ["add_parser", "run"]


def add_parser(sub: Verbs) -> None:
    watch_arg(reporter(sub, "queues", "depth and lag per queue and state"))


async def run(args: argparse.Namespace, url: str, embedded: bool) -> int:
    async def body(admin: Admin) -> int:
        counts = await admin.jobs.queue_stats()
        rows = [
            (c.queue, c.state, c.count, "" if c.lag_s is None else f"{c.lag_s:.3f}") for c in counts
        ]
        emit(
            [c.__dict__ for c in counts],
            as_json=args.json,
            text=table(rows, ["queue", "state", "count", "lag_s"]) if rows else "no jobs",
        )
        return 0

    return await watching(args, lambda: with_admin(url, body))
