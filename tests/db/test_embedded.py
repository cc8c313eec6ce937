"""``EmbeddedPostgres`` keeps a data directory's durability in step with what each start asks
for: the settings live in the directory (``ALTER SYSTEM``), so a durable start after a fast
one must undo them, or a directory once used for tests would silently stay non-durable.

One test, one temporary directory: every start of an embedded server costs seconds.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg

from awa.db.embedded import EmbeddedPostgres

DURABILITY = ("fsync", "synchronous_commit", "full_page_writes")


async def durability(url: str) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        return {name: str(await conn.fetchval(f"SHOW {name}")) for name in DURABILITY}
    finally:
        await conn.close()


def start_and_read(data_dir: Path, *, durable: bool) -> dict[str, str]:
    server = EmbeddedPostgres(data_dir, durable=durable)
    try:
        return asyncio.run(durability(server.start()))
    finally:
        server.stop()


def test_durable_start_resets_what_a_fast_start_turned_off(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    assert start_and_read(data_dir, durable=False) == dict.fromkeys(DURABILITY, "off")
    assert start_and_read(data_dir, durable=True) == dict.fromkeys(DURABILITY, "on")
    # reset to the defaults, not pinned to "on": nothing of ours is left for these settings
    overrides = (data_dir / "postgresql.auto.conf").read_text()
    assert [name for name in DURABILITY if name in overrides] == []
    assert "pg_stat_statements" in overrides  # the base settings stay
    shutil.rmtree(data_dir)


START_AND_PRINT = """
import sys
from awa.db.embedded import EmbeddedPostgres
server = EmbeddedPostgres(sys.argv[1], durable=False)
print(server.start(), flush=True)
sys.stdin.read()  # hold the server until the test closes our stdin
server.stop()
"""


def test_processes_starting_one_fresh_directory_at_once_share_one_server(
    tmp_path: Path,
) -> None:
    """Parallel test workers (ADR 042) or two CLIs start on one directory at once: the
    start lock lets one initialise it and the others reuse the running server."""
    data_dir = tmp_path / "pgdata"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", START_AND_PRINT, str(data_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        urls = [child.stdout.readline().strip() for child in children if child.stdout]
        errors = [
            child.stderr.read() if child.stderr else "exited"
            for child in children
            if child.poll() not in (None, 0)
        ]
        assert errors == [] and len(urls) == 3 and len(set(urls)) == 1 and urls[0], urls
        assert asyncio.run(durability(urls[0])) == dict.fromkeys(DURABILITY, "off")
    finally:
        for child in children:
            try:
                child.communicate(input="", timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.communicate()
