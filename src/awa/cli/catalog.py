"""``awa catalog``: the queues and job kinds the applications declared, with descriptions,
as the maintenance leader persisted them (read through ``awa.admin``)."""

from __future__ import annotations

import argparse

from awa.admin import Admin
from awa.cli.args import Verbs, reporter
from awa.cli.output import emit, table

__all__ = ["add_parser", "run"]


def add_parser(sub: Verbs) -> None:
    reporter(sub, "catalog", "queues and job kinds the applications declared, with descriptions")


async def run(args: argparse.Namespace, url: str, embedded: bool) -> int:
    async with await Admin.open(url) as admin:
        rows = await admin.maintenance.catalog()
    lines = [
        (r["type"], r["name"], r["queue"] or "", r["description"] or "", r["declared_by"])
        for r in rows
    ]
    text = table(lines, ["type", "name", "queue", "description", "declared_by"])
    emit(rows, as_json=args.json, text=text if rows else "nothing declared yet")
    return 0
