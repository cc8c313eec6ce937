"""The fixtures of the branch tests: ``world``, the seeded database of
``support.branch_world``, fresh for each test; and, for the branches whose tests set up
their own data (cron, dead letters, events), the fixtures of the ``support.*_world``
modules, imported here so that pytest finds them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from support.branch_world import World, seeded_world
from support.dlq_world import client
from support.events_world import receiver
from support.listener import listener
from support.store_world import mstore

__all__ = ["client", "listener", "mstore", "receiver", "world"]


@pytest.fixture
async def world(database_url: str, raw: asyncpg.Connection) -> AsyncIterator[World]:
    async with seeded_world(database_url, raw) as seeded:
        yield seeded
