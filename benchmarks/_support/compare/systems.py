"""The systems ``compare.py`` measures: which interpreter runs each adapter, how that
interpreter's virtual environment is made, and how completions are counted from outside.

Why separate environments: Awa 0.6.9 (``awa-pg``) also imports as ``awa``, so it can never
share an interpreter with this project; pgqueuer brings its own dependency set (pydantic,
uvloop, typer) that must not leak into the project's environment either. Each peer lives in
a venv under ``.awa/`` that is created on first use with ``pip install <pinned version>``.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from _support import REPO_ROOT

__all__ = ["SYSTEMS", "System", "clean_env", "ensure_venv", "system_url"]

_HERE = Path(__file__).resolve().parent


@dataclasses.dataclass(frozen=True)
class System:
    """One system under comparison."""

    key: str
    label: str
    #: The adapter script in ``_support/compare/``.
    adapter: Path
    #: pip requirements of its venv; empty: it runs on the project's own interpreter.
    requirements: tuple[str, ...]
    #: Default venv directory (``None`` for the project).
    venv: Path | None
    #: ``describe()`` key that must equal ``version`` (a pinned peer).
    version_key: str | None
    version: str | None
    #: ``count(*)`` of completed jobs, read from outside (see each adapter's docstring).
    completed_sql: str
    #: Jobs waiting after a bulk enqueue.
    queued_sql: str
    #: Its driver wants a host in the URL (Awa's Rust driver).
    needs_host: bool = False


SYSTEMS: dict[str, System] = {
    s.key: s
    for s in (
        System(
            key="project",
            label="awa (this project)",
            adapter=_HERE / "project.py",
            requirements=(),
            venv=None,
            version_key=None,
            version=None,
            completed_sql="SELECT count(*) FROM awa.jobs_done WHERE state = 'completed'",
            queued_sql="SELECT count(*) FROM awa.jobs",
        ),
        System(
            key="pgqueuer",
            label="pgqueuer 1.6.0",
            adapter=_HERE / "pgqueuer_adapter.py",
            requirements=("pgqueuer==1.6.0", "asyncpg"),
            venv=REPO_ROOT / ".awa" / "venv-pgqueuer",
            version_key="pgqueuer_version",
            version="1.6.0",
            completed_sql="SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'",
            queued_sql="SELECT count(*) FROM pgqueuer WHERE status = 'queued'",
        ),
        System(
            key="awa069",
            label="Awa 0.6.9",
            adapter=_HERE / "awa069.py",
            requirements=("awa-pg==0.6.9",),
            venv=REPO_ROOT / ".awa" / "venv-awa-pg",
            version_key="awa_pg_version",
            version="0.6.9",
            completed_sql="""
                SELECT ((SELECT coalesce(sum(completed_count), 0)
                           FROM awa.receipt_completion_batches)
                      + (SELECT count(*) FROM awa.done_entries WHERE state = 'completed'))::bigint
            """,
            # Its public ``awa.jobs`` view; every job of a bulk enqueue is available.
            queued_sql="SELECT count(*) FROM awa.jobs WHERE state = 'available'",
            needs_host=True,
        ),
    )
}


def clean_env() -> dict[str, str]:
    """No PYTHONPATH (it might point at this project's src/), no user site-packages."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def ensure_venv(system: System, venv: Path | None = None) -> str:
    """The interpreter that runs ``system``'s adapter: the project's own, or the Python of
    the peer's venv (``venv`` or its default), created with its pinned requirements when
    missing. Never the project's environment for a peer."""
    venv = venv or system.venv
    if venv is None:
        return sys.executable
    python = venv / "bin" / "python"
    if not python.exists():
        wants = " ".join(system.requirements)
        print(f"... creating {venv} with {wants}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *system.requirements],
            check=True,
            env=clean_env(),
        )
    return str(python)


def system_url(system: System, url: str) -> str:
    """Awa's Rust driver wants a host in the URL; the embedded server's URL has only
    ``?host=<socket dir>``, so give it ``localhost`` (the query's host still wins)."""
    if not system.needs_host:
        return url
    parts = urlsplit(url)
    if parts.hostname:
        return url
    user = parts.username or "postgres"
    return parts._replace(netloc=f"{user}@localhost").geturl()
