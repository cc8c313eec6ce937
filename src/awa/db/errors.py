"""Every database error class gets a defined outcome (ADR 014).

PostgreSQL and the driver raise dozens of exception types; awa's callers and background
loops need three answers only:

- **reconnect** (``DatabaseUnavailable``): the connection or the server is gone or going
  (network errors, admin/crash shutdown, idle-session and idle-in-transaction timeouts,
  too many connections). Nothing was committed by the failed call; retry once a connection
  can be had again.
- **retry** (``DatabaseBusy``, a ``DatabaseUnavailable``): the statement was interrupted
  but the connection is fine: statement timeout or ``pg_cancel_backend`` (query_canceled),
  lock_timeout (lock_not_available), a read-only transaction right after a failover, the
  server out of resources, a deadlock or serialization abort (``DatabaseConflict``).
  Nothing was written; retry with backoff.
- **caller** (a typed error the caller must act on): a value PostgreSQL cannot store
  (``ValidationError``), a schema that is missing or old (``MigrationError``), anything else
  (``DatabaseError`` with its SQLSTATE: a bug or a misconfiguration, not a transient).

Because ``DatabaseBusy`` and ``DatabaseConflict`` are ``DatabaseUnavailable``s, every loop
and caller that already retries on ``DatabaseUnavailable`` retries the transient classes
too, with the same backoff.
"""

from __future__ import annotations

import asyncpg

from awa.errors import (
    AwaError,
    DatabaseBusy,
    DatabaseConflict,
    DatabaseError,
    DatabaseUnavailable,
    MigrationError,
    ValidationError,
)

__all__ = ["READ_ONLY", "RECONNECT", "RETRY", "outcome_of", "translate_database_error"]

_E = asyncpg.exceptions

#: SQLSTATE classes and codes whose connection is gone or about to be.
RECONNECT: frozenset[str] = frozenset(
    {
        "08",  # connection exception
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now
        "57P04",  # database_dropped
        "57P05",  # idle_session_timeout
        "25P03",  # idle_in_transaction_session_timeout
        "53300",  # too_many_connections
    }
)
#: read_only_sql_transaction: the server is a standby. Retryable, but not on the same
#: session: a pooled one that meets it is dropped, so the next connects through the URL to
#: wherever it leads by then (ADR 036).
READ_ONLY = "25006"
#: SQLSTATE classes and codes after which the same call may simply be tried again.
RETRY: frozenset[str] = frozenset(
    {
        "57014",  # query_canceled: statement_timeout, pg_cancel_backend
        "55P03",  # lock_not_available: lock_timeout, NOWAIT
        READ_ONLY,  # a standby after failover
        "53",  # insufficient resources (disk full, out of memory)
        "40",  # transaction rollback: deadlock, serialization failure
        "58",  # system error (I/O error)
        "XX",  # internal error
    }
)


def outcome_of(sqlstate: str | None) -> str:
    """``"reconnect"``, ``"retry"`` or ``"caller"`` for a SQLSTATE."""
    if not sqlstate:
        return "caller"
    for table, outcome in ((RECONNECT, "reconnect"), (RETRY, "retry")):
        if sqlstate in table or sqlstate[:2] in table:
            return outcome
    return "caller"


def translate_database_error(exc: asyncpg.PostgresError) -> AwaError:
    """The typed awa error for a server error (see the module docstring)."""
    state = getattr(exc, "sqlstate", None)
    text = _first_line(exc)
    if isinstance(exc, _E.DeadlockDetectedError | _E.SerializationError):
        return DatabaseConflict(f"transaction aborted by PostgreSQL: {text}")
    outcome = outcome_of(state)
    if outcome == "reconnect":
        return DatabaseUnavailable(f"PostgreSQL ended the session ({state}): {text}")
    if outcome == "retry":
        return DatabaseBusy(state or "", f"PostgreSQL interrupted the statement ({state}): {text}")
    if isinstance(exc, _E.ProgramLimitExceededError):
        # A value over one of PostgreSQL's size limits (a jsonb string over 255 MB, an
        # index row too large for its page). Nothing was written.
        return ValidationError("parameter", text, "too large for PostgreSQL")
    if isinstance(exc, _E.DataError):
        # A value PostgreSQL cannot represent: an id beyond bigint, a NUL or a lone surrogate
        # in text. Nothing was written.
        return ValidationError("parameter", text, "not storable")
    if isinstance(
        exc, _E.UndefinedTableError | _E.UndefinedFunctionError | _E.UndefinedColumnError
    ):
        return MigrationError(
            f"awa's schema is missing or out of date ({state}): {text}; "
            "run `awa migrate` or `await client.migrate()`"
        )
    return DatabaseError(state or "", f"PostgreSQL refused the statement ({state}): {text}")


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
