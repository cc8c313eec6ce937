"""Typed errors, and the one table that gives every PostgreSQL error an outcome (ADR 014)."""

from __future__ import annotations

import asyncpg
import pytest

from awa.db.errors import outcome_of, translate_database_error
from awa.errors import (
    AwaError,
    CallbackAlreadyResolved,
    CallbackNotFound,
    DatabaseBusy,
    DatabaseConflict,
    DatabaseError,
    DatabaseUnavailable,
    HttpWorkerError,
    InvalidTransition,
    JobNotFound,
    MigrationError,
    ValidationError,
    safe_repr,
)
from awa.store.database import one_row

E = asyncpg.exceptions


def test_validation_error_names_field_value_and_reason() -> None:
    error = ValidationError("priority", 9, "expected 1..4")
    assert (error.field, error.value, error.reason) == ("priority", 9, "expected 1..4")
    assert str(error) == "invalid priority=9: expected 1..4"
    assert isinstance(error, ValueError) and isinstance(error, AwaError)


def test_safe_repr_is_bounded_and_never_raises() -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert "Hostile" in safe_repr(Hostile())  # a repr that raises still gives a name
    assert len(safe_repr("x" * 10_000, limit=50)) == 50
    nested: list[object] = []
    for _ in range(10_000):
        nested = [nested]
    assert len(safe_repr(nested)) <= 120


def test_lookup_errors_are_lookup_errors_and_say_what_is_missing() -> None:
    assert isinstance(JobNotFound(5), LookupError) and "id=5" in str(JobNotFound(5))
    assert isinstance(CallbackNotFound("c"), LookupError)
    assert "already resolved (completed)" in str(CallbackAlreadyResolved("c", "completed"))
    assert str(InvalidTransition(3, "running", "retry")) == (
        "cannot retry job id=3 in state 'running'"
    )
    error = HttpWorkerError("https://x/***", "HTTP 500", 500)
    assert str(error) == "POST https://x/***: HTTP 500" and error.status == 500


def test_transient_database_errors_are_unavailable_so_loops_retry_them() -> None:
    assert issubclass(DatabaseBusy, DatabaseUnavailable)
    assert issubclass(DatabaseConflict, DatabaseUnavailable)
    assert not issubclass(DatabaseError, DatabaseUnavailable)


@pytest.mark.parametrize(
    ("sqlstate", "outcome"),
    [
        (None, "caller"),
        ("", "caller"),
        ("08006", "reconnect"),  # connection failure: a whole class
        ("57P01", "reconnect"),
        ("25P03", "reconnect"),
        ("53300", "reconnect"),  # too_many_connections wins over class 53's retry
        ("53100", "retry"),  # disk full
        ("57014", "retry"),
        ("55P03", "retry"),
        ("40001", "retry"),
        ("XX000", "retry"),
        ("57000", "caller"),  # class 57 as a whole is not transient
        ("23505", "caller"),
        ("42P01", "caller"),
    ],
)
def test_every_sqlstate_has_an_outcome(sqlstate: str | None, outcome: str) -> None:
    assert outcome_of(sqlstate) == outcome


@pytest.mark.parametrize(
    ("exc", "typed"),
    [
        (E.DeadlockDetectedError, DatabaseConflict),
        (E.SerializationError, DatabaseConflict),
        (E.AdminShutdownError, DatabaseUnavailable),
        (E.QueryCanceledError, DatabaseBusy),
        (E.LockNotAvailableError, DatabaseBusy),
        (E.StringDataRightTruncationError, ValidationError),
        (E.ProgramLimitExceededError, ValidationError),
        (E.UndefinedTableError, MigrationError),
        (E.UndefinedFunctionError, MigrationError),
        (E.UniqueViolationError, DatabaseError),
    ],
)
def test_translation_gives_the_typed_error(exc: type[asyncpg.PostgresError], typed: type) -> None:
    translated = translate_database_error(exc("first line\nsecond line"))
    assert type(translated) is typed
    assert "second line" not in str(translated)
    if isinstance(translated, DatabaseBusy | DatabaseError):
        assert translated.sqlstate == exc.sqlstate


def test_a_statement_that_must_return_a_row_and_did_not_is_a_typed_error() -> None:
    """``one_row`` replaces ``assert row is not None`` in the store: ``python -O`` strips
    asserts, and an AssertionError names neither the statement nor an outcome."""
    with pytest.raises(DatabaseError, match="promote_due returned no row") as caught:
        one_row(None, "promote_due")
    assert caught.value.sqlstate == "XX000"
