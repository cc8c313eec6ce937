"""Throw-away databases on a server whose role may ``CREATE DATABASE``: the test suite's and
``awa.testing``'s pytest fixtures (one migrated template per session, one copy per test).

Why here and not in the fixtures: both the project's own ``tests/conftest.py`` and the
plugin users enable build databases the same way, and the statements (``sql/testdb.sql``)
live with the other SQL. Names are formatted in as identifiers, so they are checked first:
only lower-case letters, digits and ``_`` pass.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from awa.db.connect import connect
from awa.db.migrate import migrate
from awa.db.queries import paired_queries
from awa.errors import ValidationError

__all__ = ["create_database", "drop_database", "migrated_template", "with_database"]

_QUERIES = paired_queries("testdb")
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _ident(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError("name", name, "expected a database name of [a-z0-9_], 1..63 long")
    return f'"{name}"'


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead of its own."""
    return urlsplit(url)._replace(path=f"/{_ident(name)[1:-1]}").geturl()


async def create_database(server_url: str, name: str, *, template: str | None = None) -> str:
    """Create ``name`` (a copy of ``template`` when given); its URL."""
    if template is None:
        statement = _QUERIES["create_database"].sql.format(name=_ident(name))
    else:
        statement = _QUERIES["create_database_from_template"].sql.format(
            name=_ident(name), template=_ident(template)
        )
    admin = await connect(server_url)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()
    return with_database(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    """Drop ``name`` if it exists, ending the sessions still connected to it."""
    admin = await connect(server_url)
    try:
        await admin.execute(_QUERIES["drop_database"].sql.format(name=_ident(name)))
    finally:
        await admin.close()


async def migrated_template(server_url: str, name: str) -> str:
    """(Re)create ``name`` and apply every migration to it: the database each test copies.
    A leftover of an earlier run under the same name is dropped first."""
    await drop_database(server_url, name)
    url = await create_database(server_url, name)
    conn = await connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return url
