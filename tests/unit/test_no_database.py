"""The unit folder's guards hold: a database cannot be reached from here by accident."""

from __future__ import annotations

import asyncpg
import pytest

from awa.db import connect as awa_connect
from awa.db.embedded import EmbeddedPostgres


async def test_asyncpg_connect_is_refused() -> None:
    with pytest.raises(AssertionError, match="without a database"):
        await asyncpg.connect("postgresql://localhost/awa")


async def test_awa_connect_is_refused_before_any_network() -> None:
    # awa's own helper goes through asyncpg: it must hit the guard, not a socket.
    with pytest.raises(AssertionError, match="without a database"):
        await awa_connect("postgresql://localhost:1/awa", timeout=0.1)


def test_pools_and_embedded_servers_are_refused(tmp_path: object) -> None:
    with pytest.raises(AssertionError, match="without a database"):
        asyncpg.create_pool("postgresql://localhost/awa")
    with pytest.raises(AssertionError, match="without a database"):
        EmbeddedPostgres(str(tmp_path)).start()
