"""Which PostgreSQL the CLI talks to: ``--database-url``, else ``AWA_DATABASE_URL``, else a
private embedded server (started here, stopped when the command exits)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from awa.config import database_url_from_env
from awa.db import check_database_url
from awa.db.embedded import EmbeddedPostgres

__all__ = ["resolve_database"]

log = logging.getLogger("awa.cli")


@contextmanager
def resolve_database(url: str | None, data_dir: str | None) -> Iterator[tuple[str, bool]]:
    """Yield (url, embedded?). A SIGINT or SIGTERM during the embedded server's start is
    held by ``awa.cli.signals`` until the caller is inside this ``try``, whose ``finally``
    stops the server."""
    chosen = url or database_url_from_env()
    if chosen:
        yield check_database_url(chosen), False
        return
    server = EmbeddedPostgres(data_dir)
    log.debug("starting embedded PostgreSQL in %s", server.data_dir)
    started = server.start()
    # The URL, not only the folder: another process (a second worker, psql, the app's own
    # producer) can then reach the same server while this command runs.
    log.info("using embedded PostgreSQL in %s: AWA_DATABASE_URL=%s", server.data_dir, started)
    try:
        yield started, True
    finally:
        server.stop()
