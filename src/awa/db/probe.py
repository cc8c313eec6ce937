"""A round trip that proves a connection is alive without starting a transaction.

Why: the presence and LISTEN connections are otherwise idle, and a half-open one never
reports its death, so awa asks them something often (the LISTEN connection every 0.1 s,
ADR 015). ``SELECT 1`` would cost a transaction each, and idle cost is counted in
transactions per second. The protocol's *Close* of a prepared statement that does not exist,
followed by *Sync*, is answered with CloseComplete and ReadyForQuery: PostgreSQL does not
start a transaction, take a snapshot or read a catalog for it (closing a nonexistent
statement is not an error), yet it is a message like any other, so it also re-arms the
server's ``idle_session_timeout``. Measured: 0 transactions and ~20 µs per probe.

asyncpg has no public call for a bare Close; its protocol's ``close_statement`` sends
exactly Close + Sync for a statement state it is given, so the probe hands it the state of a
name nobody prepares. Should a future asyncpg change that internal API, the probe falls back
to ``SELECT 1`` (one warning in the log); ``tests/db/test_probe.py`` pins the free path on the
version awa ships with.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from awa.db.queries import paired_queries

__all__ = ["PROBE_STATEMENT", "probe", "probe_is_free"]

log = logging.getLogger("awa.db.probe")

#: The statement name the probe closes; nothing in awa prepares it.
PROBE_STATEMENT = "awa_liveness_probe"

_StatementState: Any
try:
    from asyncpg.protocol.protocol import PreparedStatementState as _StatementState
except ImportError:  # pragma: no cover - depends on the installed asyncpg
    _StatementState = None

_free = _StatementState is not None


_QUERIES = paired_queries("probe")


def probe_is_free() -> bool:
    """Whether probes are transaction-free (false once the fallback took over)."""
    return _free


async def probe(conn: asyncpg.Connection) -> None:
    """One round trip on ``conn``. Raises what the driver raises when the connection is
    gone; the caller bounds it with a timeout (a half-open peer never answers)."""
    global _free
    if _free:
        protocol: Any = getattr(conn, "_protocol", None)
        try:
            state = _StatementState(PROBE_STATEMENT, "", protocol, asyncpg.Record, False)
            await protocol.close_statement(state, None)
            return
        except (TypeError, AttributeError) as exc:
            _free = False
            log.warning(
                "liveness probes fall back to a statement (one transaction each): this asyncpg"
                " has no usable close_statement (%s: %s)",
                type(exc).__name__,
                exc,
            )
    await conn.fetchval(_QUERIES["probe_fallback"].sql)
