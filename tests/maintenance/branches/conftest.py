"""The ``world`` fixture of the branch tests: the seeded database of
``support.branch_world``, fresh for each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from support.branch_world import World, seeded_world


@pytest.fixture
async def world(database_url: str, raw: asyncpg.Connection) -> AsyncIterator[World]:
    async with seeded_world(database_url, raw) as seeded:
        yield seeded
