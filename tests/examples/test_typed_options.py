"""``mypy --strict`` catches a misspelt insert option and a handler typed for other args.

The quickstart example is checked as it ships (clean), then with one option misspelt and
with a typed handler declared for the wrong args type: each must be an error naming the
mistake. Without ``awa.InsertOptions`` (``**options: Any``) the first would pass.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "quickstart" / "quickstart.py"

WRONG_ARGS_TYPE = """

import dataclasses


@dataclasses.dataclass
class Receipt:
    order: int


@dataclasses.dataclass
class Refund:
    order: int


@client.handler("receipt", args=Receipt)
async def receipt(ctx: awa.JobContext[Refund]) -> None:
    print(ctx.args.order)
"""


def mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    target = tmp_path / "example.py"
    target.write_text(source)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(target),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_mypy_strict_catches_a_misspelt_option_and_a_mistyped_handler(tmp_path: Path) -> None:
    source = EXAMPLE.read_text()
    clean = mypy(tmp_path, source)
    assert clean.returncode == 0, clean.stdout

    assert "priority=1)" in source
    misspelt = mypy(tmp_path, source.replace("priority=1)", "priorty=1)", 1))
    assert misspelt.returncode == 1
    assert 'Unexpected keyword argument "priorty"' in misspelt.stdout, misspelt.stdout

    mistyped = mypy(tmp_path, source + WRONG_ARGS_TYPE)
    assert mistyped.returncode == 1
    assert "JobContext[Refund]" in mistyped.stdout, mistyped.stdout
