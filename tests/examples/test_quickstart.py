"""``examples/quickstart/quickstart.py`` runs as a user runs it, and README's "Using it"
block is exactly that file, so the first code a user copies cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg

import awa
from support.examples import run_script

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart" / "quickstart.py"


def test_the_quickstart_runs_on_a_fresh_database(database_url: str, tmp_path: Path) -> None:
    """A fresh database: the example migrates it first (``client.migrate()`` before
    ``async with client``), inserts five jobs and runs four of them."""
    stdout, output = run_script(QUICKSTART, database_url, tmp_path)
    assert "done: 4 sent, 1 scheduled" in stdout, output[-4000:]
    assert not (tmp_path / ".awa").exists()  # AWA_DATABASE_URL given: no embedded server


def test_the_readme_using_it_block_is_the_quickstart() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Using it", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert blocks[0] == QUICKSTART.read_text()
    assert "examples/quickstart/quickstart.py" in section


async def test_embedded_gives_a_url_and_stops_its_server(tmp_path: Path) -> None:
    """``awa.embedded()``: a server of one's own in a directory, its URL usable by any
    client, and stopped on leaving the block."""
    with awa.embedded(tmp_path / "pg", durable=False) as url:
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
    assert not (tmp_path / "pg" / "postmaster.pid").exists()
