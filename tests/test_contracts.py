"""Every import-linter contract in ``pyproject.toml`` can fail.

A contract that cannot fail guards nothing (a misspelt module name, say, is silently
"kept"). For each contract, a scratch module holding one forbidden import is written into a
throw-away copy of the package, and ``lint-imports`` must report that contract BROKEN; the
unmodified copy must keep every contract. A contract added to ``pyproject.toml`` without a
breaking edge here fails ``test_every_contract_has_a_breaking_edge``. Database-free.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"

#: Contract name -> (scratch module path inside ``awa``, its source: one forbidden edge).
BREAKING_EDGES: dict[str, tuple[str, str]] = {
    "Layers flow downward": ("store/_scratch.py", "import awa.client\n"),
    "Only store and db import asyncpg": ("admin/_scratch.py", "import asyncpg\n"),
    "Only telemetry imports opentelemetry": ("worker/_scratch.py", "import opentelemetry\n"),
    "Surfaces reach the database through admin, never the store": (
        "web/_scratch.py",
        "from awa.store import Store\n",
    ),
    "Worker and maintenance do not import each other": (
        "maintenance/_scratch.py",
        "import awa.worker\n",
    ),
    "No maintenance branch imports another": (
        "maintenance/branches/_scratch.py",
        "import awa.maintenance.branches.rotate\n",
    ),
    "Branches do not import the machinery that schedules them": (
        "maintenance/branches/_scratch.py",
        "import awa.maintenance.lane\n",
    ),
}


def _contract_names() -> list[str]:
    config = tomllib.loads(PYPROJECT.read_text())
    return [c["name"] for c in config["tool"]["importlinter"]["contracts"]]


def _lint_copy(tmp_path: Path, scratch: tuple[str, str] | None) -> str:
    """Run ``lint-imports`` over a copy of ``src/awa`` (plus ``scratch``); its output."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "awa", src / "awa", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PYPROJECT, tmp_path / "pyproject.toml")
    if scratch is not None:
        relative, source = scratch
        (src / "awa" / relative).write_text('"""Scratch: one forbidden edge."""\n\n' + source)
    lint = Path(sys.executable).with_name("lint-imports")
    command = [str(lint)] if lint.exists() else ["lint-imports"]
    env = {**os.environ, "PYTHONPATH": str(src)}
    result = subprocess.run(
        [*command, "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result.stdout + result.stderr


def test_every_contract_has_a_breaking_edge() -> None:
    assert sorted(_contract_names()) == sorted(BREAKING_EDGES)


def test_the_unmodified_copy_keeps_every_contract(tmp_path: Path) -> None:
    output = _lint_copy(tmp_path, None)
    for name in _contract_names():
        assert f"{name} KEPT" in output, output


@pytest.mark.parametrize("contract", sorted(BREAKING_EDGES))
def test_a_forbidden_edge_breaks_the_contract(tmp_path: Path, contract: str) -> None:
    output = _lint_copy(tmp_path, BREAKING_EDGES[contract])
    assert f"{contract} BROKEN" in output, output


def test_a_module_outside_every_layer_breaks_the_layers(tmp_path: Path) -> None:
    """The layers are exhaustive: a new top-level module must be given its place."""
    output = _lint_copy(tmp_path, ("unplaced.py", "import awa.errors\n"))
    assert "Layers flow downward BROKEN" in output, output
    assert "- awa.unplaced" in output, output
