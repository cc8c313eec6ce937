"""Unit tests run without a database: ``python -m pytest tests/unit`` needs no PostgreSQL.

Everything here tests pure code (validation, encodings, signing, schedules, outcomes), so a
newcomer can run it in seconds with nothing installed but the package. Two guards keep it
that way: the session's ``server_url`` fixture (which every database fixture depends on) is
replaced by one that fails the test, and every way of opening an asyncpg connection or pool
raises instead of reaching for a server. A test that needs PostgreSQL belongs in the folder
of the area it tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NoReturn

import asyncpg
import pytest

from awa.db.embedded import EmbeddedPostgres

NO_DATABASE = "tests/unit runs without a database: move this test next to its area"


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """Shadows tests/conftest.py's: any database fixture used here fails the test."""
    pytest.fail(f"{NO_DATABASE} (it asked for a database fixture)")
    yield ""  # pragma: no cover - unreachable, keeps the fixture a generator like the original


def _refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
    raise AssertionError(f"{NO_DATABASE} (it opened a connection)")


@pytest.fixture(autouse=True)
def _no_database_access(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening a connection, a pool or an embedded server raises in every unit test."""
    monkeypatch.setattr(asyncpg, "connect", _refuse)
    monkeypatch.setattr(asyncpg, "create_pool", _refuse)
    monkeypatch.setattr(asyncpg.connection, "connect", _refuse)
    monkeypatch.setattr(asyncpg.pool, "create_pool", _refuse)
    monkeypatch.setattr(EmbeddedPostgres, "start", _refuse)
