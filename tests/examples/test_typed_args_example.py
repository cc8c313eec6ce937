"""``examples/typed_args/typed_args.py`` runs as a user runs it: a dataclass and a pydantic
model go in, the handlers get them back typed, and a bad mapping is refused at insert."""

from __future__ import annotations

from pathlib import Path

from support.examples import EXAMPLES, run_script

EXAMPLE = EXAMPLES / "typed_args" / "typed_args.py"


def test_the_typed_args_example_runs(database_url: str, tmp_path: Path) -> None:
    stdout, output = run_script(EXAMPLE, database_url, tmp_path)
    lines = stdout.splitlines()
    assert "refused: args" in lines, output
    assert "['1250', 'Hello Ada <ada@example.com>']" in lines, output
