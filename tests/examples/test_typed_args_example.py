"""``examples/typed_args/typed_args.py`` runs as a user runs it: a dataclass and a pydantic
model go in, the handlers get them back typed, and a bad mapping is refused at insert."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "typed_args" / "typed_args.py"


def test_the_typed_args_example_runs(database_url: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=tmp_path,
        env={**os.environ, "AWA_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    lines = result.stdout.splitlines()
    assert "refused: args" in lines, output
    assert "['1250', 'Hello Ada <ada@example.com>']" in lines, output
