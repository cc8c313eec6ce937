"""Maintenance leadership (``sql/leadership.sql``): the leader's dedicated connection (the
leader lock and the leadership term) and ``Store.leadership``, the pooled reads and writes of
who leads.

Leadership is a session-scoped advisory lock (``LEADER_LOCK_KEY``) on a connection outside
every pool: if the process or this connection dies, PostgreSQL releases the lock and the
follower first in the lock's wait queue takes over at once (followers wait for the lock,
``wait_acquire``, rather than poll it; ADR 036). The lock alone cannot stop a deposed
leader whose writes are still in flight (a half-open connection keeps a session "alive" for
the client long after the server dropped it), so each leadership also starts a new *term*
(``begin_term``): a number in ``awa.leader_term`` that every maintenance transaction of the
leader checks first (``awa.store.database``), so a write of an older term changes nothing
(ADR 012).

Every call here is bounded: a peer that stopped answering costs at most ``CLOSE_TIMEOUT``
on the way out, and ``release`` drops the connection rather than wait for TCP to give up.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import anyio
import asyncpg

from awa.db.connect import CONNECT_ERRORS, connect
from awa.db.errors import translate_database_error
from awa.db.queries import paired_queries
from awa.errors import DatabaseUnavailable
from awa.store.database import Database, one_row
from awa.store.dedicated import CLOSE_ERRORS, CLOSE_TIMEOUT, DedicatedConnection

__all__ = ["LEADER_LOCK_KEY", "LeaderConnection", "Leadership"]

#: Key of the maintenance leadership lock ("awa_lead" in ASCII, as a bigint).
LEADER_LOCK_KEY = 0x6177615F6C656164

#: How often the server checks, while a candidate waits for the lock, that the candidate's
#: client is still connected (a closed socket ends the wait and the session).
CANDIDATE_CHECK = 1.0
CANDIDATE_SETUP_TIMEOUT = 5.0

_QUERIES = paired_queries("leadership")


def _sql(name: str) -> str:
    return _QUERIES[name].sql


class LeaderConnection(DedicatedConnection):
    """The leader's dedicated connection (outside every pool): holds the session-scoped
    leadership lock, starts leadership terms, answers the watchdog's health check, and
    LISTENs for due times."""

    @classmethod
    async def open(
        cls, url: str, idle_limit: float | None = None, wait: float | None = None
    ) -> LeaderConnection:
        """Connect. With ``idle_limit`` (seconds; the caller promises to use the connection
        more often than that: election attempts, watchdog checks), the server ends the
        session once it sits idle longer. A leader that vanished without a word (host
        crash, partition) then loses the lock within that bound instead of when TCP gives
        up, which a NAT, load balancer or proxy answering keepalives can put off forever.
        (PostgreSQL 14 and later; older servers keep only TCP's own detection.)

        With ``wait`` (seconds), the session is a candidate that campaigns with
        ``wait_acquire``: each lock wait ends after ``wait``, and the server checks every
        ``CANDIDATE_CHECK`` that a waiting candidate's client is still there (ADR 036)."""
        conn = await connect(url, idle_limit=idle_limit)
        if wait is not None:
            try:
                await _candidate_session(conn, wait)
            except BaseException:
                conn.terminate()
                raise
        return cls(conn)

    async def wait_acquire(self, wait: float, timeout: float = 5.0) -> bool:
        """Wait for the leadership lock, at most ``wait`` seconds (the session's lock
        timeout, set by ``open(wait=...)``): True once won, False when the wait ran out.
        A follower spends one transaction per ``wait`` instead of one per poll, and wins
        the moment the leader releases the lock or its session ends. ``DatabaseUnavailable``
        when the server does not answer within ``wait + timeout`` (a half-open
        connection) or the connection is lost."""
        try:
            with anyio.fail_after(wait + timeout):
                await self._conn.execute(_sql("leader_wait_lock"), LEADER_LOCK_KEY)
        except (asyncpg.exceptions.LockNotAvailableError, asyncpg.exceptions.QueryCanceledError):
            # The wait ran out, or a statement_timeout shorter than it (set on the role or
            # database) or pg_cancel_backend ended it: either way, wait again.
            return False
        except TimeoutError as exc:
            self.terminate()
            raise DatabaseUnavailable(f"leader election: no answer within {wait:g}s") from exc
        except CONNECT_ERRORS as exc:
            raise DatabaseUnavailable(f"leader election failed: {exc}") from exc
        return True

    async def try_acquire(self, timeout: float = 5.0) -> bool:
        """One election attempt; ``DatabaseUnavailable`` if the server does not answer
        within ``timeout`` (a half-open connection would otherwise hang the campaign)."""
        return bool(await self._ask("leader election", timeout, _sql("leader_try_lock")))

    async def check(self, timeout: float = 5.0) -> tuple[bool, float]:
        """(whether this session still holds the leadership lock, the database clock as a
        Unix epoch), in one round trip."""
        try:
            with anyio.fail_after(timeout):
                row = await self._conn.fetchrow(_sql("leader_holds_lock"), LEADER_LOCK_KEY)
        except TimeoutError as exc:
            self.terminate()
            raise DatabaseUnavailable(
                f"leader health check: no answer within {timeout:g}s"
            ) from exc
        except CONNECT_ERRORS as exc:
            raise DatabaseUnavailable(f"leader health check failed: {exc}") from exc
        row = one_row(row, "leader_holds_lock")
        return bool(row["holds"]), float(row["db_epoch"])

    async def db_epoch(self, timeout: float = 5.0) -> float:
        """The database clock now (``clock_timestamp()``), as a Unix epoch."""
        try:
            with anyio.fail_after(timeout):
                return float(await self._conn.fetchval(_sql("db_epoch")))
        except TimeoutError as exc:
            self.terminate()
            raise DatabaseUnavailable(f"database clock: no answer within {timeout:g}s") from exc
        except CONNECT_ERRORS as exc:
            raise DatabaseUnavailable(f"database clock read failed: {exc}") from exc

    async def begin_term(self, holder: str, wait: float, now: datetime | None = None) -> int | None:
        """Start the next leadership term (call with the lock held); returns it.

        The bump waits for every fenced transaction of older terms still in flight, at most
        ``wait`` seconds (``None``: they did not end in time; the caller should give the
        lock back and try again later rather than lead without a term). A deposed leader's
        transaction cannot hold it longer than the idle bound its fence set, unless its
        backend is busy in a statement."""
        millis = f"{max(1, int(wait * 1000))}ms"

        async def bump() -> int:
            async with self._conn.transaction():
                await self._conn.execute(_sql("term_lock_timeout"), millis)
                return int(await self._conn.fetchval(_sql("term_begin"), holder, now))

        try:
            with anyio.fail_after(wait + CLOSE_TIMEOUT):
                return await bump()
        except asyncpg.exceptions.LockNotAvailableError:
            return None
        except TimeoutError as exc:
            self.terminate()  # the server did not even answer with a lock timeout
            raise DatabaseUnavailable(f"starting a leadership term timed out: {exc}") from exc
        except CONNECT_ERRORS as exc:
            raise DatabaseUnavailable(f"starting a leadership term failed: {exc}") from exc
        except asyncpg.PostgresError as exc:
            # Read-only (25006: a standby, e.g. a URL still naming a demoted primary; advisory
            # locks work there, writes do not): drop the session so the next campaign
            # connects afresh, through the URL, to wherever it points by then.
            self.terminate()
            raise translate_database_error(exc) from exc

    async def release(self) -> None:
        """Give the lock back, within ``CLOSE_TIMEOUT``. A connection that does not answer
        in time is dropped instead: the server then frees the lock with the session, and
        nothing of this process waits for that."""
        if not self.alive:
            return
        released = False
        with anyio.move_on_after(CLOSE_TIMEOUT):
            try:
                await self._conn.execute(_sql("leader_unlock"), LEADER_LOCK_KEY)
                released = True
            except CLOSE_ERRORS:
                pass
        if not released:
            self.terminate()

    async def listen(
        self, channel: str, on_payload: Callable[[str], None], timeout: float = 5.0
    ) -> None:
        """LISTEN on the leader connection, bounded like every other use of it: a silent
        connection is dropped (``DatabaseUnavailable``) instead of holding the leader."""

        def deliver(_c: object, _pid: int, _channel: str, payload: object) -> None:
            on_payload(str(payload))

        try:
            with anyio.fail_after(timeout):
                await self._conn.add_listener(channel, deliver)
        except TimeoutError as exc:
            self.terminate()
            raise DatabaseUnavailable(f"LISTEN {channel}: no answer within {timeout:g}s") from exc
        except CONNECT_ERRORS as exc:
            raise DatabaseUnavailable(f"LISTEN {channel} failed: {exc}") from exc

    async def _ask(self, what: str, timeout: float, query: str) -> object:
        try:
            with anyio.fail_after(timeout):
                return await self._conn.fetchval(query, LEADER_LOCK_KEY)
        except TimeoutError as exc:
            self.terminate()
            raise DatabaseUnavailable(f"{what}: no answer within {timeout:g}s") from exc
        except CONNECT_ERRORS as exc:
            raise DatabaseUnavailable(f"{what} failed: {exc}") from exc


async def _candidate_session(conn: asyncpg.Connection, wait: float) -> None:
    """Apply ``candidate_session`` (lock wait bound, client check) to a new connection."""
    timeout = f"{max(1, int(wait * 1000))}ms"
    try:
        with anyio.fail_after(CANDIDATE_SETUP_TIMEOUT):
            if conn.get_server_version().major >= 14:
                check = f"{int(CANDIDATE_CHECK * 1000)}ms"
                await conn.execute(_sql("candidate_session"), timeout, check)
            else:
                await conn.execute(_sql("candidate_session_pre14"), timeout)
    except TimeoutError as exc:
        raise DatabaseUnavailable(f"candidate session setup: no answer: {exc}") from exc
    except CONNECT_ERRORS as exc:
        raise DatabaseUnavailable(f"candidate session setup failed: {exc}") from exc


class Leadership:
    """Who leads, as the leader recorded it (pooled; the leader's writes are fenced by the
    term of the ``Database`` this part holds)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record_leader(
        self, instance_id: str, mode: str, reason: str | None, now: datetime | None = None
    ) -> None:
        """Record ``instance_id`` as the leader, in lane ``mode``, of this store's term."""
        await self._db.guard(
            lambda: self._db.run.execute(
                _sql("record_leader"), instance_id, now, mode, reason, self._db.term
            )
        )

    async def get_leader(self) -> dict[str, Any] | None:
        row = await self._db.guard(lambda: self._db.run.fetchrow(_sql("get_leader")))
        return None if row is None else dict(row)

    async def current_term(self) -> dict[str, Any]:
        """The current leadership term: ``term``, ``holder``, ``started_at``."""
        row = await self._db.guard(lambda: self._db.run.fetchrow(_sql("current_term")))
        return {} if row is None else dict(row)
