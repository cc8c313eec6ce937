"""Schema migrations: applied once, idempotent, safe to race, and required by the client."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

import awa
from awa.db import MIGRATIONS, current_version, migrate

ALL_VERSIONS = [m.version for m in MIGRATIONS]


async def test_migrate_applies_all_versions_then_nothing(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        assert await current_version(conn) == 0
        assert ALL_VERSIONS[0] == 1
        assert await migrate(conn) == ALL_VERSIONS
        assert await current_version(conn) == ALL_VERSIONS[-1]
        assert await migrate(conn) == []
        rows = await conn.fetch("SELECT version, checksum FROM awa.schema_migrations ORDER BY 1")
        assert [r["version"] for r in rows] == ALL_VERSIONS
        assert [r["checksum"] for r in rows] == [m.checksum for m in MIGRATIONS]
        for table in ("awa.jobs", "awa.jobs_done", "awa.job_unique", "awa.runtimes"):
            assert await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
    finally:
        await conn.close()


async def test_concurrent_migrations_both_succeed_and_apply_once(
    empty_database_url: str,
) -> None:
    conns = [await asyncpg.connect(empty_database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        assert sorted(results, key=len) == [[], [], ALL_VERSIONS]
        count = await conns[0].fetchval("SELECT count(*) FROM awa.schema_migrations")
        assert count == len(ALL_VERSIONS)
    finally:
        for c in conns:
            await c.close()


async def test_migrate_to_target_zero_applies_nothing(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        assert await migrate(conn, target=0) == []
        assert await current_version(conn) == 0
        with pytest.raises(awa.MigrationError):
            await migrate(conn, target=ALL_VERSIONS[-1] + 1)
        with pytest.raises(awa.MigrationError):
            await migrate(conn, target=-1)
    finally:
        await conn.close()


async def test_client_connect_on_unmigrated_database_raises_migration_error(
    empty_database_url: str,
) -> None:
    client = awa.Client(empty_database_url)
    with pytest.raises(awa.MigrationError):
        await client.connect()
    with pytest.raises(awa.ConfigError):
        _ = client.store  # the failed connect left nothing half-open


async def test_client_migrate_then_connect_and_use(empty_database_url: str) -> None:
    client = awa.Client(empty_database_url)
    assert await client.migrate() == ALL_VERSIONS
    assert await client.migrate() == []
    async with client:
        job = await client.insert("after_migration", {"ok": True})
        assert (await client.get_job(job.id)).args == {"ok": True}


async def test_edited_migration_is_detected(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE awa.schema_migrations SET checksum = 'tampered' WHERE version = 1"
        )
        with pytest.raises(awa.MigrationError):
            await migrate(conn)
    finally:
        await conn.close()


async def test_newer_schema_than_code_is_refused_by_migrate(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        future = ALL_VERSIONS[-1] + 1
        await conn.execute(
            "INSERT INTO awa.schema_migrations (version, name, checksum) VALUES ($1, 'x', 'x')",
            future,
        )
        with pytest.raises(awa.MigrationError):
            await migrate(conn)
    finally:
        await conn.close()


async def test_migrate_on_already_migrated_database_is_noop(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        job = await client.insert("keep_me")
        assert await client.migrate() == []
        assert (await client.get_job(job.id)).state is awa.JobState.AVAILABLE
