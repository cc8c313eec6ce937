"""Every file under ``examples/`` is run by a named test (issue 18: "every file in
``examples/`` runs in ``.ci/run``"). A new example file fails here until it is added to
``RUN_BY`` with the test that runs it, and that test names the file's module."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

#: Example file (under examples/) -> the test file that runs it, with the spelling of the
#: module or path by which that test reaches it.
RUN_BY: dict[str, tuple[str, str]] = {
    "quickstart/quickstart.py": ("tests/examples/test_quickstart.py", '"quickstart.py"'),
    "testing/app.py": ("tests/testing/test_example.py", '"testing"'),
    "testing/conftest.py": ("tests/testing/test_example.py", '"testing"'),
    "testing/test_example_jobs.py": ("tests/testing/test_example.py", '"testing"'),
    "testing/pytest.ini": ("tests/testing/test_example.py", '"testing"'),
    "fastapi/jobs.py": ("tests/examples/test_fastapi.py", '"jobs"'),
    "fastapi/api.py": ("tests/examples/test_fastapi.py", '"api"'),
    "flask/signup.py": ("tests/examples/test_flask.py", '"signup"'),
    "cron/schedules.py": ("tests/examples/test_cron.py", '"schedules.py"'),
    "callbacks/payments.py": ("tests/examples/test_callbacks.py", '"payments.py"'),
    "typed_args/typed_args.py": ("tests/examples/test_typed_args_example.py", '"typed_args.py"'),
}


def example_files() -> list[str]:
    """Committed-looking files: not caches, nor what running an example leaves behind (its
    embedded server's ``.awa/``)."""
    found = []
    for path in EXAMPLES.rglob("*"):
        parts = path.relative_to(EXAMPLES).parts
        if path.is_file() and not any(p.startswith(".") or p == "__pycache__" for p in parts):
            found.append("/".join(parts))
    return sorted(found)


def test_every_example_file_has_a_test_that_runs_it() -> None:
    assert example_files() == sorted(RUN_BY)


@pytest.mark.parametrize("example", sorted(RUN_BY))
def test_the_named_test_reaches_the_example(example: str) -> None:
    test_file, spelling = RUN_BY[example]
    text = (ROOT / test_file).read_text()
    assert spelling in text, f"{test_file} does not name {spelling} (for examples/{example})"
