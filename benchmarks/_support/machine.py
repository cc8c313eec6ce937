"""Machine facts recorded with every result: hardware, versions, durability, which code."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

from _support import AWA_SOURCE, REPO_ROOT
from _support.server import BenchServer, DurabilityCheck
from awa.db import connect


def _git_dirty() -> bool | None:
    """True when src/ has uncommitted changes (read-only ``git status``)."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except OSError:
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


async def machine_info(server: BenchServer, durability: DurabilityCheck) -> dict[str, Any]:
    conn = await connect(server.url)
    try:
        pg_version = str(await conn.fetchval("SHOW server_version"))
        pg_full = str(await conn.fetchval("SELECT version()"))
        shared_buffers = str(await conn.fetchval("SHOW shared_buffers"))
    finally:
        await conn.close()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "postgres_version": pg_version,
        "postgres_full_version": pg_full,
        "postgres_shared_buffers": shared_buffers,
        "server": server.kind,
        "durable": durability.effective_durable,
        "durable_requested": durability.requested_durable,
        "durability_settings": durability.settings,
        "durability_corrected": durability.corrected,
        "load_average_at_start": load,
        "git_commit": _git_commit(),
        "git_dirty_src": _git_dirty(),
        "awa_source": AWA_SOURCE,
    }


def describe_machine(machine: dict[str, Any]) -> str:
    """One line naming the machine, server and code of a result (``machine_info``'s)."""
    dirty = " (src dirty)" if machine["git_dirty_src"] else ""
    return (
        f"{machine['cpu_count']} CPUs, Python {machine['python']}, PostgreSQL "
        f"{machine['postgres_version']} ({machine['server']}), durable={machine['durable']}, "
        f"commit {machine['git_commit']}{dirty}"
    )
