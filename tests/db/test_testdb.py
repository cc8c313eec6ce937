"""Throw-away databases (``awa.db.testdb``): created empty or from a template, dropped with
their sessions, and names checked before they are formatted into a statement."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from awa.db import current_version
from awa.db.migrate import MIGRATIONS
from awa.db.testdb import create_database, drop_database, migrated_template, with_database
from awa.errors import ValidationError


async def test_a_template_is_migrated_and_its_copies_are_too(server_url: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    template, copy = f"awa_tt_{suffix}", f"awa_tc_{suffix}"
    await migrated_template(server_url, template)
    try:
        url = await create_database(server_url, copy, template=template)
        assert url == with_database(server_url, copy)
        conn = await asyncpg.connect(url)
        try:
            assert await current_version(conn) == MIGRATIONS[-1].version
        finally:
            await conn.close()
    finally:
        await drop_database(server_url, copy)
        await drop_database(server_url, template)


async def test_drop_ends_open_sessions_and_tolerates_a_missing_database(server_url: str) -> None:
    name = f"awa_td_{uuid.uuid4().hex[:8]}"
    url = await create_database(server_url, name)
    conn = await asyncpg.connect(url)
    await drop_database(server_url, name)
    await drop_database(server_url, name)  # already gone: nothing to do
    assert conn.is_closed() or not await _answers(conn)
    admin = await asyncpg.connect(server_url)
    try:
        assert not await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name)
    finally:
        await admin.close()


async def _answers(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("SELECT 1")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    finally:
        conn.terminate()
    return True


@pytest.mark.parametrize("name", ['x"; DROP DATABASE postgres; --', "Upper", "", "a" * 64, "1st"])
async def test_names_that_are_not_plain_identifiers_are_refused(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        await create_database("postgresql://nobody@127.0.0.1:1/x", name)
    assert info.value.field == "name"
