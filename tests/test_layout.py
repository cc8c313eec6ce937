"""The reader check of issue 15 (ADR 016, 017, 018), made executable: from the tree alone a
newcomer finds each module, CLI verb, maintenance branch, web page and query, and its test.

Database-free and quick; each check names what it found out of place, so a failure says
which file to move or split rather than only that the layout drifted.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from awa.cli.main import OFFLINE_VERBS, VERBS, build_parser
from awa.maintenance.builtin import BUILTIN_BRANCHES

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "awa"
TESTS = ROOT / "tests"

#: The size a module may reach before it is doing two jobs (DEVELOPERS.md).
MAX_MODULE_LINES = 400

#: A string that *is* a SQL statement (not one that mentions a keyword in prose).
SQL_STATEMENT = re.compile(
    r"""^\s*(
        SELECT\s | INSERT\s+INTO\s | UPDATE\s+\S+\s+SET\s | DELETE\s+FROM\s | WITH\s+\w+\s+AS\s
      | CREATE\s | ALTER\s | DROP\s | TRUNCATE\s | COPY\s | LOCK\s+TABLE\s
      | (UN)?LISTEN\s+"?\w+"?\s*;?\s*$ | NOTIFY\s+\w+
    )""",
    re.VERBOSE,
)


#: Modules that may hold SQL text, and why. Nothing else may.
SQL_ALLOWED = {
    # The private embedded server (development and tests) is configured through its own
    # psql, with setting names ALTER SYSTEM cannot take as parameters.
    "db/embedded.py",
}


def python_modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def sql_strings(tree: ast.AST) -> list[tuple[int, str]]:
    """String literals (and f-string heads) that are SQL statements; docstrings excluded."""
    docstrings: set[int] = set()  # and the parts of f-strings
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            docstrings.add(id(body[0].value))
        if isinstance(node, ast.JoinedStr):  # judged whole, below, not part by part
            docstrings.update(id(v) for v in node.values)
    found = []
    for node in ast.walk(tree):
        text: str | None = None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr) and node.values:
            head = node.values[0]
            if isinstance(head, ast.Constant) and isinstance(head.value, str):
                text = head.value
        if text is not None and id(node) not in docstrings and SQL_STATEMENT.match(text):
            found.append((getattr(node, "lineno", 0), text))
    return found


def test_no_module_is_over_the_size_limit() -> None:
    over = {
        str(p.relative_to(SRC)): n
        for p in python_modules()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert over == {}, f"modules over {MAX_MODULE_LINES} lines (split them): {over}"


def test_the_sql_detector_tells_statements_from_prose() -> None:
    """The check below is only as good as this detector: it must flag statements and must
    not flag log lines or docstrings that mention a keyword."""
    tree = ast.parse(
        '"""SELECT in a docstring is prose."""\n'
        'a = "SELECT 1"\n'
        'b = f"UPDATE awa.jobs SET x = {y}"\n'
        'c = "LISTEN connection lost (%s); polling"\n'
        'd = "LISTEN awa_wakeups"\n'
    )
    assert [line for line, _ in sql_strings(tree)] == [2, 3, 5]


def test_no_sql_outside_the_sql_folder() -> None:
    """Every statement awa sends lives in ``src/awa/sql/`` (or a migration), where it is
    reviewed like code and paired with the module that runs it."""
    found = [
        f"{p.relative_to(SRC)}:{line}: {text.strip()[:60]!r}"
        for p in python_modules()
        if str(p.relative_to(SRC)) not in SQL_ALLOWED
        for line, text in sql_strings(ast.parse(p.read_text()))
    ]
    assert found == [], "inline SQL (move it to src/awa/sql/):\n" + "\n".join(found)


def test_every_cli_verb_lives_in_the_module_named_after_it() -> None:
    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command" and a.choices is not None)
    verbs = sorted(subcommands.choices or {})
    every: dict[str, object] = {**VERBS, **OFFLINE_VERBS}
    assert verbs == sorted(every)
    misplaced = {
        verb: module.__name__  # type: ignore[attr-defined]
        for verb, module in every.items()
        if module.__name__ != f"awa.cli.{verb}"  # type: ignore[attr-defined]
        or not (SRC / "cli" / f"{verb}.py").is_file()
    }
    assert misplaced == {}


def cli_test_text() -> str:
    """Every test file that drives the real CLI entry point."""
    return "\n".join(
        text for p in sorted(TESTS.rglob("test_*.py")) if "awa.cli.main" in (text := p.read_text())
    )


@pytest.mark.parametrize("verb", sorted({*VERBS, *OFFLINE_VERBS}))
def test_every_cli_verb_is_driven_by_a_test(verb: str) -> None:
    assert re.search(rf"""["']{verb}["']""", cli_test_text()), (
        f"no test runs `awa {verb}` through awa.cli.main"
    )


@pytest.mark.parametrize("branch", sorted(b.name for b in BUILTIN_BRANCHES))
def test_every_maintenance_branch_has_its_file_and_its_test(branch: str) -> None:
    assert (SRC / "maintenance" / "branches" / f"{branch}.py").is_file()
    assert (TESTS / "maintenance" / "branches" / f"test_{branch}.py").is_file(), (
        f"the tests of branch {branch!r} belong in tests/maintenance/branches/test_{branch}.py"
    )


#: Source folders that hold data rather than code, and the test file that checks them.
TESTED_AS_DATA = {
    "migrations": "db/test_migrate.py",  # applied, re-applied and refused when newer
    "sql": "store/test_pairing.py",  # each query run by exactly its paired module
}


def test_every_module_has_its_tests_where_the_tree_says() -> None:
    """``src/awa/<pkg>/<mod>.py`` is tested under ``tests/<pkg>/``; a top-level ``<mod>.py``
    under ``tests/<mod>/`` or, when it needs no database, in ``tests/unit/test_<mod>.py``."""
    homeless = []
    for p in python_modules():
        rel = p.relative_to(SRC)
        if len(rel.parts) > 1:
            folder = rel.parts[0]
            if folder in TESTED_AS_DATA:
                ok = (TESTS / TESTED_AS_DATA[folder]).is_file()
            else:
                ok = (TESTS / folder).is_dir()
        elif p.name == "__init__.py":
            continue
        elif p.name == "__main__.py":  # ``python -m awa``: the CLI's entry, tested with it
            ok = (TESTS / "cli").is_dir()
        else:
            ok = (TESTS / p.stem).is_dir() or (TESTS / "unit" / f"test_{p.stem}.py").is_file()
        if not ok:
            homeless.append(str(rel))
    assert homeless == [], "modules whose tests cannot be found from the tree"


#: A web page's path as its module compares it (``path == "/livez"``, ``path in (...)``) or
#: routes it (Starlette's ``Route("/api/jobs", ...)``; paths with parameters are not listed).
PAGE_PATH = re.compile(r"""(?:path\s*(?:==|!=|in)\s*\(?|Route\()([^:\n]*)""")


def web_pages() -> dict[str, str]:
    """Every path a web module answers, mapped to the module that answers it."""
    pages: dict[str, str] = {}
    for p in sorted((SRC / "web").glob("*.py")):
        for match in PAGE_PATH.finditer(p.read_text()):
            for path in re.findall(r"""["'](/[\w./-]*)["']""", match.group(1)):
                pages[path] = p.name
    return pages


def test_the_page_detector_finds_the_known_pages() -> None:
    pages = web_pages()
    assert pages["/livez"] == pages["/readyz"] == pages["/health"] == "health.py"
    assert pages["/"] == pages["/api/status"] == pages["/api/jobs"] == "console.py"


@pytest.mark.parametrize("path", sorted(web_pages()))
def test_every_web_page_is_requested_by_a_web_test(path: str) -> None:
    text = "\n".join(p.read_text() for p in sorted((TESTS / "web").glob("test_*.py")))
    assert re.search(rf"""["'][^"'\s]*{re.escape(path)}["'?]""", text), (
        f"{path} ({web_pages()[path]}) is not requested by any test in tests/web/"
    )


def test_no_store_part_inherits_from_another() -> None:
    """The store is composed (ADR 016): each part is reached as ``store.<part>``, never
    through a base class or a ``sibling()``."""
    facade = ast.parse((SRC / "store" / "facade.py").read_text())
    parts = {
        node.value.func.id
        for node in ast.walk(facade)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and any(
            isinstance(t, ast.Attribute) and ast.unparse(t.value) == "self" for t in node.targets
        )
    }
    assert {"Jobs", "Cron", "Events", "Callbacks", "DeadLetters"} <= parts
    bases = {
        node.name: [ast.unparse(b) for b in node.bases]
        for p in (SRC / "store").glob("*.py")
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.ClassDef) and node.name in parts
    }
    assert bases.keys() == parts
    assert {name: b for name, b in bases.items() if set(b) & parts} == {}
    sources = "\n".join(p.read_text() for p in python_modules())
    assert not re.search(r"\.sibling\(", sources), "a store reached through sibling()"


def test_the_readme_map_names_only_paths_that_exist() -> None:
    """README's "Where things are" table: a renamed folder must not leave the map stale."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Where things are", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`((?:src/awa|tests|benchmarks|adr|docs)/[\w./-]*)`", section)
    assert len(named) >= 10
    missing = [path for path in named if not (ROOT / path).exists()]
    assert missing == []
