"""What a test needs to drive one maintenance branch by hand, with no leader: a store of its
own (the ``mstore`` fixture) and the ``BranchContext`` a supervisor would pass to
``run_once``.

Shared by the branch tests in ``tests/maintenance/branches/`` and the area tests (cron,
dead letters, events) that run a branch to set up what they test; the folders' conftests
import the fixture so that pytest finds it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import awa
from awa.config import MaintenanceConfig
from awa.maintenance import BranchContext
from awa.store import Store


@pytest.fixture
async def mstore(database_url: str) -> AsyncIterator[Store]:
    """A store separate from the root ``store`` fixture, sized for a test that runs a branch
    beside a client and a few concurrent store calls."""
    store = await Store.open(database_url, max_size=6)
    yield store
    await store.close()


def ctx_for(
    store: Store, clock: awa.Clock | None = None, config: MaintenanceConfig | None = None
) -> BranchContext:
    """The context one ``run_once`` receives; ``clock`` is usually a ``FakeClock`` pinning
    time. No startup jitter: only the supervisor reads it, and no supervisor runs here."""
    return BranchContext(
        store=store,
        clock=clock or awa.SystemClock(),
        config=config or MaintenanceConfig(startup_jitter=0),
    )
