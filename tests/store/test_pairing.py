"""The pairing gate (no database): ``store/<x>.py`` (or ``db/<x>.py``) and ``sql/<x>.sql``
go together.

- every ``sql/<x>.sql`` has its module ``store/<x>.py``;
- every query of ``sql/<x>.sql`` is named in ``store/<x>.py`` (no dead SQL);
- every query ``store/<x>.py`` runs (``_sql("name")`` / ``_QUERIES["name"]``) is defined in
  ``sql/<x>.sql`` (a module runs its own file's queries and no other's);
- no module of ``awa.store`` carries SQL text of its own.

``pairing_problems`` takes the texts, not the tree, so the last tests can show it failing on
deliberately broken examples: a gate that cannot fail checks nothing.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from pathlib import Path

import awa.store
from awa.db.queries import parse_queries

STORE = Path(awa.store.__file__).parent
SQL = STORE.parent / "sql"
DB = STORE.parent / "db"
#: Modules that talk to PostgreSQL without awa's named SQL: the embedded server is set up
#: through its own ``psql`` with setting names (identifiers ALTER SYSTEM cannot take as
#: parameters), for development and tests only.
UNPAIRED = {"embedded.py"}

#: How a module runs one of its queries.
_RUNS = re.compile(r"""(?:_sql\(|_QUERIES\[)\s*["']([a-z_][a-z0-9_]*)["']""")
#: What SQL text looks like inside a Python string (upper-case keywords, as the .sql files).
_SQL_TEXT = re.compile(r"\b(SELECT|INSERT INTO|UPDATE \w|DELETE FROM|CREATE |ALTER |TRUNCATE )")


def _strings(source: str) -> list[str]:
    """String constants of a module, docstrings excluded (they may quote SQL to explain it)."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def pairing_problems(modules: Mapping[str, str], sql_files: Mapping[str, str]) -> list[str]:
    """What breaks the pairing, for ``modules`` (``store/<x>`` or ``db/<x>`` → Python source)
    and ``sql_files`` (stem → SQL text)."""
    problems: list[str] = []
    by_stem = {path.rsplit("/", 1)[-1]: path for path in modules}
    for stem, text in sorted(sql_files.items()):
        if stem not in by_stem:
            problems.append(f"sql/{stem}.sql has no module store/{stem}.py or db/{stem}.py")
            continue
        defined = {q.name for q in parse_queries(f"{stem}.sql", text)}
        named = set(_strings(modules[by_stem[stem]]))
        for name in sorted(defined - named):
            problems.append(f"sql/{stem}.sql: query {name!r} is not used by {by_stem[stem]}.py")
    for path, source in sorted(modules.items()):
        stem = path.rsplit("/", 1)[-1]
        runs = set(_RUNS.findall(source))
        text = sql_files.get(stem, "")
        defined = {q.name for q in parse_queries(f"{stem}.sql", text)}
        for name in sorted(runs - defined):
            problems.append(f"{path}.py runs {name!r}, not defined in sql/{stem}.sql")
        for value in _strings(source):
            if _SQL_TEXT.search(value):
                problems.append(f"{path}.py holds SQL text: {value[:40]!r}")
    return problems


def _tree() -> tuple[dict[str, str], dict[str, str]]:
    modules = {
        f"{folder.name}/{p.stem}": p.read_text(encoding="utf-8")
        for folder in (STORE, DB)
        for p in folder.glob("*.py")
        if p.name not in UNPAIRED
    }
    sql_files = {p.stem: p.read_text(encoding="utf-8") for p in SQL.glob("*.sql")}
    return modules, sql_files


def test_every_store_module_runs_exactly_its_paired_sql_file() -> None:
    modules, sql_files = _tree()
    assert pairing_problems(modules, sql_files) == []


def test_the_tree_is_actually_paired() -> None:
    """Guards the gate's own inputs: an empty glob would pass vacuously."""
    modules, sql_files = _tree()
    assert {"jobs", "admin", "cron", "events", "callbacks", "dlq"} <= sql_files.keys()
    assert sql_files.keys() <= {path.rsplit("/", 1)[-1] for path in modules}
    assert {"db/migrate", "db/connect", "db/probe"} <= modules.keys()


_SQL_OK = """-- name: used_query
-- Used.
SELECT 1;
"""
_MODULE_OK = """
def _sql(name: str) -> str: ...
async def used_query() -> None:
    _sql("used_query")
"""


def test_the_gate_passes_a_paired_example() -> None:
    assert pairing_problems({"store/x": _MODULE_OK}, {"x": _SQL_OK}) == []


def test_the_gate_fails_on_an_unused_query() -> None:
    sql = _SQL_OK + "\n-- name: dead_query\n-- Never run.\nSELECT 2;\n"
    assert pairing_problems({"store/x": _MODULE_OK}, {"x": sql}) == [
        "sql/x.sql: query 'dead_query' is not used by store/x.py"
    ]


def test_the_gate_fails_on_a_query_from_another_file_or_none() -> None:
    module = _MODULE_OK + '\n_sql("elsewhere")\n'
    assert pairing_problems({"store/x": module}, {"x": _SQL_OK, "y": ""}) == [
        "sql/y.sql has no module store/y.py or db/y.py",
        "store/x.py runs 'elsewhere', not defined in sql/x.sql",
    ]


def test_the_gate_fails_on_inline_sql() -> None:
    module = _MODULE_OK + '\nQUERY = "SELECT unique_key FROM awa.jobs WHERE id = $1"\n'
    assert pairing_problems({"store/x": module}, {"x": _SQL_OK}) == [
        "store/x.py holds SQL text: 'SELECT unique_key FROM awa.jobs WHERE id'"
    ]
