"""Test infrastructure: one PostgreSQL per session, a migrated template, a database per test.

With ``AWA_DATABASE_URL`` set, tests use that server (the role needs CREATEDB); otherwise an
embedded PostgreSQL is started in ``.awa/test-pgdata`` (reused across runs, fsync off).
Each test gets ``CREATE DATABASE … TEMPLATE awa_tpl_<pid>``: isolated and fast. The
template and per-test databases come from ``awa.testing.pytest_plugin`` (what applications
use too); the server is chosen here.
"""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import AsyncIterator, Generator, Iterator

import asyncpg
import pytest

from awa.db.embedded import EmbeddedPostgres
from awa.db.testdb import create_database, drop_database
from awa.runtime import gc_freeze
from awa.store import Store

#: The database fixtures are awa.testing's, the ones applications use (one template per
#: session, one copy per test); only the server is the suite's own, below.
pytest_plugins = ["awa.testing.pytest_plugin"]


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    url = os.environ.get("AWA_DATABASE_URL")
    if url:
        yield url
        return
    data_dir = os.environ.get("AWA_TEST_PG_DIR", os.path.join(".awa", "test-pgdata"))
    server = EmbeddedPostgres(data_dir, durable=False)
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def awa_server_url(server_url: str) -> str:
    """The plugin builds its template on the suite's server (``AWA_DATABASE_URL`` here)."""
    return server_url


@pytest.fixture(scope="session")
def template_name(awa_template: str) -> str:
    return awa_template


@pytest.fixture
def database_url(awa_database_url: str) -> str:
    """A fresh, migrated database for this test alone."""
    return awa_database_url


@pytest.fixture
async def empty_database_url(server_url: str) -> AsyncIterator[str]:
    """A fresh database with no awa schema (for migration tests)."""
    name = f"awa_e_{uuid.uuid4().hex[:12]}"
    yield await create_database(server_url, name)
    await drop_database(server_url, name)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    s = await Store.open(database_url, max_size=5)
    yield s
    await s.close()


@pytest.fixture
async def raw(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection for assertions that read tables directly."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


# Hypothesis profiles (issue 9). Without HYPOTHESIS_PROFILE, hypothesis defaults apply and
# the stateful store-vs-model test bounds itself for CI; HYPOTHESIS_PROFILE=long runs every
# property test, that one included, far longer (README, "Reliability").
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile(
    "long", max_examples=2000, stateful_step_count=100, deadline=None, print_blob=True
)
if os.environ.get("HYPOTHESIS_PROFILE"):
    _hypothesis_settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])


@pytest.fixture(autouse=True)
def thawed_garbage_collector() -> Iterator[None]:
    """Every started runtime freezes the objects alive (ADR 021). A worker does that once;
    a test process starts hundreds of runtimes, and what each froze would never be
    collected again. Each test starts and ends with nothing frozen."""
    gc.unfreeze()
    gc_freeze.frozen_once = False
    yield
    gc.unfreeze()
    gc_freeze.frozen_once = False


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Make a report's captured output and failure text UTF-8 encodable. Hostile-input
    tests make the runtime log texts with lone surrogates (a handler's
    ``ValueError("bad name \\udcff")``); a report is sent between processes as UTF-8 under
    ``pytest -n`` (pytest-xdist), which refuses them and stops the whole run. The escaped
    text still shows what was logged."""
    report = yield
    report.sections = [(title, _encodable(text)) for title, text in report.sections]
    if report.longrepr is not None:  # a failure's text quotes the exception's message
        text = str(report.longrepr)
        if _encodable(text) != text:
            report.longrepr = _encodable(text)
    return report


def _encodable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
