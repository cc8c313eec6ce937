"""Which PostgreSQL the CLI talks to: ``--database-url``, else ``AWA_DATABASE_URL``, else a
private embedded server (started here, stopped when the command exits); and ``awa
migrate``, which brings that database's schema up to date."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from awa.cli.args import Verbs, reporter
from awa.cli.output import emit
from awa.client import Client
from awa.config import database_url_from_env
from awa.db import check_database_url
from awa.db.embedded import EmbeddedPostgres

__all__ = ["add_migrate_parser", "resolve_database", "run_migrate"]

log = logging.getLogger("awa.cli")


@contextmanager
def resolve_database(url: str | None, data_dir: str | None) -> Iterator[tuple[str, bool]]:
    """Yield (url, embedded?)."""
    chosen = url or database_url_from_env()
    if chosen:
        yield check_database_url(chosen), False
        return
    server = EmbeddedPostgres(data_dir)
    started = server.start()
    log.info("using embedded PostgreSQL in %s", server.data_dir)
    try:
        yield started, True
    finally:
        server.stop()


def add_migrate_parser(sub: Verbs) -> None:
    reporter(sub, "migrate", "apply pending schema migrations")


async def run_migrate(args: argparse.Namespace, url: str) -> int:
    applied = await Client(url).migrate()
    emit(
        {"applied": applied},
        as_json=args.json,
        text=f"applied migrations {applied}" if applied else "schema is up to date",
    )
    return 0
