"""Named SQL queries, loaded once from ``src/awa/sql/*.sql``.

Format: a ``-- name: NAME`` line, then a ``-- description`` line, then the statement. A name
defined twice or a query without a description fails at import time. Each store module
takes only its own file's queries (``paired_queries``); that every query it runs is defined
there, and every query there is run by it, is checked by the database-free pairing gate
(``tests/store/test_pairing.py``) rather than at the first call on a hot path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

__all__ = ["Query", "load_queries", "paired_queries", "parse_queries", "sql_text"]

_NAME = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$")


@dataclass(frozen=True)
class Query:
    name: str
    description: str
    sql: str
    source: str


def parse_queries(source: str, text: str) -> list[Query]:
    """The queries of one ``.sql`` file (``source`` names it in errors)."""
    queries: list[Query] = []
    name: str | None = None
    description = ""
    body: list[str] = []

    def flush() -> None:
        if name is None:
            return
        sql = "\n".join(body).strip()
        if not description:
            raise ValueError(f"{source}: query {name!r} has no description line")
        if not sql:
            raise ValueError(f"{source}: query {name!r} is empty")
        queries.append(Query(name, description, sql, source))

    for line in text.splitlines():
        match = _NAME.match(line)
        if match:
            flush()
            name, description, body = match[1], "", []
        elif name is not None and not description and not body and line.startswith("-- "):
            description = line[3:].strip()
        elif name is not None and (body or not line.startswith("--")):
            body.append(line)
    flush()
    return queries


def load_queries(required: frozenset[str] = frozenset()) -> dict[str, Query]:
    """All named queries; raise if a name is duplicated or a ``required`` one is missing."""
    found: dict[str, Query] = {}
    for entry in sorted(resources.files("awa.sql").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        for query in parse_queries(entry.name, entry.read_text(encoding="utf-8")):
            if query.name in found:
                other = found[query.name].source
                raise ValueError(f"query {query.name!r} defined in both {other} and {entry.name}")
            found[query.name] = query
    missing = required - found.keys()
    if missing:
        raise ValueError(f"queries used by the code but defined nowhere: {sorted(missing)}")
    return found


def paired_queries(stem: str) -> dict[str, Query]:
    """The queries of ``sql/<stem>.sql`` only: what the store module ``<stem>.py`` may run
    (the pairing gate, ``tests/store/test_pairing.py``, holds each module to its file).

    Loads every file first, so a duplicate name anywhere still fails at import time."""
    source = f"{stem}.sql"
    return {name: q for name, q in _ALL.items() if q.source == source}


_ALL: dict[str, Query] = load_queries()


def sql_text(name: str) -> str:
    """The text of query ``name``, whichever file defines it (tests, benchmarks, EXPLAIN)."""
    return _ALL[name].sql
