"""Importing an example's modules the way its users run them: the example's folder on
``sys.path``, its modules by their top-level names (``jobs``, ``api``), as ``uvicorn api:app``
or ``awa worker --app jobs:client`` run from that folder import them. Shared by the tests
of ``examples/`` (``tests/examples/``, whose conftest imports the fixture)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_script(script: Path, database_url: str, cwd: Path, timeout: float = 120) -> tuple[str, str]:
    """Run an example as its users do: ``python script.py`` in ``cwd`` with
    ``AWA_DATABASE_URL`` set. Asserts it exited 0; returns (stdout, stdout + stderr), the
    second for failure messages."""
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env={**os.environ, "AWA_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return result.stdout, output


#: ``example("fastapi", "api")``: the module ``api`` of ``examples/fastapi/``.
LoadExample = Callable[[str, str], ModuleType]


@pytest.fixture
def example() -> Iterator[LoadExample]:
    """Each test gets fresh modules (so fresh module-level clients, never one connected by
    an earlier test); afterwards the folders leave ``sys.path`` and their modules
    ``sys.modules``, so one example's ``jobs`` never stands in for another's."""
    folders: list[str] = []
    before = set(sys.modules)

    def load(folder: str, module: str) -> ModuleType:
        path = str(EXAMPLES / folder)
        if path not in sys.path:
            sys.path.insert(0, path)
            folders.append(path)
        return importlib.import_module(module)

    try:
        yield load
    finally:
        for path in folders:
            sys.path.remove(path)
        for name in set(sys.modules) - before:
            module_file = getattr(sys.modules[name], "__file__", None) or ""
            if any(module_file.startswith(path) for path in folders):
                del sys.modules[name]
