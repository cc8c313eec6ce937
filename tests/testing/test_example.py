"""The documented example (``examples/testing/``) runs, and README's "Testing your handlers"
shows exactly its code, so neither can rot without this failing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "testing"


def test_the_example_tests_pass_against_the_suites_server(server_url: str) -> None:
    """Run as a user would (``cd examples/testing && python -m pytest``: its own
    ``pytest.ini`` and ``conftest.py``), on this session's server rather than a second one."""
    env = {**os.environ, "AWA_TEST_DATABASE_URL": server_url, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("AWA_DATABASE_URL", None)
    env.pop("PYTEST_ADDOPTS", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert re.search(r"\b3 passed\b", result.stdout), output[-4000:]


def test_the_readme_section_is_the_example_code() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Testing your handlers", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert blocks == [(EXAMPLE / "test_example_jobs.py").read_text()]
    assert "examples/testing/" in section
