"""``awa migrate``: bring the database's schema up to date (the schema's own lock makes
concurrent runs safe)."""

from __future__ import annotations

import argparse

from awa.cli.args import Verbs, reporter
from awa.cli.output import emit
from awa.client import Client

__all__ = ["add_parser", "run"]


def add_parser(sub: Verbs) -> None:
    reporter(sub, "migrate", "apply pending schema migrations")


async def run(args: argparse.Namespace, url: str, embedded: bool) -> int:
    applied = await Client(url).migrate()
    emit(
        {"applied": applied},
        as_json=args.json,
        text=f"applied migrations {applied}" if applied else "schema is up to date",
    )
    return 0
