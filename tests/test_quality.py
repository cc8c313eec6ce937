"""Tooling gates run as tests, so the one test command also enforces them."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
from pathlib import Path

import pytest

import awa

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.parametrize(
    "command",
    [
        (sys.executable, "-m", "ruff", "check", "src", "tests", "benchmarks", "examples"),
        (
            sys.executable,
            "-m",
            "ruff",
            "format",
            "--check",
            "src",
            "tests",
            "benchmarks",
            "examples",
        ),
        (sys.executable, "-m", "mypy"),
        # The venv's own script: a lint-imports found first on PATH may belong to another
        # checkout's venv and check that copy of the package.
        (
            str(_LINT)
            if (_LINT := Path(sys.executable).with_name("lint-imports")).exists()
            else "lint-imports",
        ),
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict", "import-contracts"],
)
def test_tool_passes(command: tuple[str, ...]) -> None:
    result = _run(*command)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_public_api_is_exactly_what_all_lists() -> None:
    exported = {name for name in dir(awa) if not name.startswith("_")}
    modules = {name for name in exported if isinstance(getattr(awa, name), types.ModuleType)}
    assert set(awa.__all__) == exported - modules
    for name in awa.__all__:
        assert getattr(awa, name).__module__.startswith("awa."), name


def test_every_named_query_is_used_by_the_code() -> None:
    """Per file, and able to fail: ``tests/store/test_pairing.py``. This is the whole-tree
    backstop: no query is defined that no code names."""
    from awa.db.queries import load_queries

    for module in (ROOT / "src" / "awa" / "store").glob("*.py"):
        importlib.import_module(f"awa.store.{module.stem}")
    defined = set(load_queries())
    source = "\n".join(p.read_text() for p in (ROOT / "src" / "awa").rglob("*.py"))
    unused = {name for name in defined if f'"{name}"' not in source}
    assert not unused, f"named queries nobody uses: {sorted(unused)}"
