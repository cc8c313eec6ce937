"""The pytest plugin's fixtures (``awa.testing.pytest_plugin``), as applications get them.

The project's own suite takes every database through them (``tests/conftest.py``); these
tests check what an application relies on directly."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import awa
from awa.testing.pytest_plugin import run_sync

SEEN: list[str] = []


async def test_each_test_gets_a_fresh_migrated_database(
    awa_database_url: str, awa_template: str
) -> None:
    name = urlsplit(awa_database_url).path.lstrip("/")
    assert name != awa_template
    assert name not in SEEN
    SEEN.append(name)
    async with awa.Client(awa_database_url) as client:  # refuses an unmigrated schema
        assert await client.list_jobs() == []
        await client.insert("work")


async def test_and_another_one(awa_database_url: str) -> None:
    assert urlsplit(awa_database_url).path.lstrip("/") not in SEEN
    async with awa.Client(awa_database_url) as client:
        assert await client.list_jobs() == []  # the previous test's job is not here


async def test_run_sync_works_while_an_event_loop_runs() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert run_sync(answer()) == 42
