"""Versioned schema migrations, applied in one transaction under an advisory lock.

A second process migrating at the same moment blocks on the lock, then finds nothing left to
do: it waits, it does not fail. Files are ``src/awa/migrations/NNNN_name.sql``, applied in
order; ``awa.schema_migrations`` records each version with its checksum so an edited
migration is detected instead of silently skipped.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from awa.db.queries import paired_queries
from awa.errors import MigrationError

__all__ = ["MIGRATIONS", "MIGRATION_LOCK_KEY", "Migration", "current_version", "migrate"]

#: Advisory lock key for migrations ("awa_migr" in ASCII, as a bigint).
MIGRATION_LOCK_KEY = 0x6177615F6D696772


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def _load() -> tuple[Migration, ...]:
    found = []
    for entry in resources.files("awa.migrations").iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration versions must be 1..N without gaps, found {versions}")
    return tuple(found)


MIGRATIONS = _load()

_QUERIES = paired_queries("migrate")


def _sql(name: str) -> str:
    return _QUERIES[name].sql


async def current_version(conn: asyncpg.Connection) -> int:
    """The highest applied version, 0 for an empty database."""
    exists = await conn.fetchval(_sql("migrations_table_exists"))
    if not exists:
        return 0
    return int(await conn.fetchval(_sql("schema_version")))


async def migrate(conn: asyncpg.Connection, *, target: int | None = None) -> list[int]:
    """Apply pending migrations up to ``target`` (default: all); return the versions applied."""
    latest = MIGRATIONS[-1].version
    target = latest if target is None else target
    if not 0 <= target <= latest:
        raise MigrationError(f"target version {target} is outside 0..{latest}")
    try:
        return await _apply(conn, latest, target)
    except asyncpg.InsufficientPrivilegeError as exc:
        role = await conn.fetchval(_sql("migrating_role"))
        raise MigrationError(
            f"role {role!r} may not change the awa schema ({exc}); apply migrations as the "
            "schema's owner (`awa migrate` with the owner's URL), then run the runtime with "
            "this role (docs/security.md)"
        ) from exc


async def _apply(conn: asyncpg.Connection, latest: int, target: int) -> list[int]:
    """The body of ``migrate``. No DDL runs unless something is pending, so a
    least-privilege runtime role can call it on an up-to-date schema (a no-op)."""
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute(_sql("migration_lock"), MIGRATION_LOCK_KEY)
        if not await conn.fetchval(_sql("migrations_table_exists")):
            await conn.execute(_sql("migrations_create_table"))
        rows = await conn.fetch(_sql("migrations_applied"))
        done = {int(r["version"]): str(r["checksum"]) for r in rows}
        if done and max(done) > latest:
            raise MigrationError(
                f"database schema is at version {max(done)}, newer than this awa ({latest})"
            )
        for migration in MIGRATIONS:
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version}_{migration.name} was edited after it "
                        "was applied (checksum differs)"
                    )
                continue
            if migration.version > target:
                break
            await conn.execute(migration.sql)
            await conn.execute(
                _sql("migration_record"),
                migration.version,
                migration.name,
                migration.checksum,
            )
            applied.append(migration.version)
    return applied
