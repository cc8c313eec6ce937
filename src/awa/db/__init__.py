"""Connections, migrations and the embedded PostgreSQL: everything that talks to the server
before there is a schema to talk to. Only this package and ``awa.store`` import asyncpg."""

from awa.db.connect import (
    Connection,
    Pool,
    RawJson,
    check_database_url,
    connect,
    create_pool,
)
from awa.db.migrate import MIGRATIONS, current_version, migrate

__all__ = [
    "MIGRATIONS",
    "Connection",
    "Pool",
    "RawJson",
    "check_database_url",
    "connect",
    "create_pool",
    "current_version",
    "migrate",
]
