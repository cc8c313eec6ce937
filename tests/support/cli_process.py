"""The real ``awa`` command in a child process (``python -m awa`` of the interpreter running
the tests, so the venv's awa), and what the CLI tests look for in what it leaves behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["awa", "awa_env", "error_lines", "postgres_of", "spawn_awa", "wait_for_line"]


def awa_env(**extra: str) -> dict[str, str]:
    """The test's environment without the variables that would pick the database for the
    child (each test says which it means) or silence its warnings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AWA_DATABASE_URL", "AWA_EMBEDDED_DIR", "PYTHONWARNINGS")
    }
    env.update(extra)
    return env


def awa(
    *argv: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 90,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "awa", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
        env=env if env is not None else awa_env(),
    )


def _default_stop_signals() -> None:
    """In the child, before exec: SIGINT and SIGTERM at their defaults, whatever the test
    runner inherited (a runner started in the background has SIGINT ignored, which the
    child would honour)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def spawn_awa(
    *argv: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    merge_stderr: bool = True,
) -> subprocess.Popen[str]:
    """``awa`` running in the background, stdout and stderr merged (or, with
    ``merge_stderr=False``, apart: ``--json`` output alone on stdout), line by line."""
    return subprocess.Popen(
        [sys.executable, "-m", "awa", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        text=True,
        bufsize=1,
        cwd=cwd,
        env=env if env is not None else awa_env(),
        preexec_fn=_default_stop_signals,  # noqa: PLW1509 (no threads start children here)
    )


def wait_for_line(process: subprocess.Popen[str], marker: str) -> list[str]:
    """Read the child's output until a line contains ``marker``; every line read. Fails if
    the child exits first (bounded by the child itself, and by pytest's timeout)."""
    assert process.stdout is not None
    seen: list[str] = []
    for line in process.stdout:
        seen.append(line)
        if marker in line:
            return seen
    raise AssertionError(f"awa exited ({process.wait()}) before {marker!r}:\n{''.join(seen)}")


#: The head of one of the CLI's log records (``logging.basicConfig`` in ``awa.cli.main``).
LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")


def error_lines(stderr: str) -> list[str]:
    """What the CLI printed on stderr apart from its log records."""
    return [line for line in stderr.splitlines() if line.strip() and not LOG_RECORD.match(line)]


def postgres_of(data_dir: Path) -> list[int]:
    """Pids of the postgres processes whose command line names ``data_dir`` (the
    postmaster started on it; its children exit with it), read from /proc: the process
    table itself, not a pid file that a killed server leaves behind."""
    wanted = str(data_dir.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # exited while we looked, or not ours to read
            continue
        if any(wanted in arg.decode(errors="replace") for arg in argv) and _is_postgres(argv):
            found.append(int(entry.name))
    return found


def _is_postgres(argv: Sequence[bytes]) -> bool:
    return bool(argv) and Path(argv[0].decode(errors="replace")).name.startswith("postgres")
