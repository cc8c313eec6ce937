"""``awa.runtime.wiring``: the one place a runtime takes its database address and opens its
pools, and the package layout that keeps it so.

A runtime's resources used to be opened wherever they were needed, each reading
``client.store.url``; now ``Wiring`` reads it once, after the client connected, and every
part of the runtime is handed what it opens from. The layout test reads the source: it is
database-free, the others run on the real PostgreSQL of ``tests/conftest.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import awa
import awa.runtime
from awa.config import MaintenanceConfig, RecoveryPolicy, RuntimeConfig
from awa.runtime.wiring import Wiring

RUNTIME_DIR = Path(awa.runtime.__file__).parent


def test_only_wiring_reads_the_clients_address_or_opens_a_store() -> None:
    opening = re.compile(r"client\.store\.url|\bStore\.open\(")
    offenders = [
        path.name
        for path in RUNTIME_DIR.glob("*.py")
        if path.name != "wiring.py" and opening.search(path.read_text())
    ]
    assert offenders == []


def test_the_public_runtime_is_the_package_lifecycle_class() -> None:
    assert awa.Runtime is awa.runtime.Runtime
    assert set(awa.runtime.__all__) == {"ROLES", "Runtime"}
    assert {p.stem for p in RUNTIME_DIR.glob("*.py")} == {
        "__init__",
        "declarations",
        "gc_freeze",
        "host",
        "presence",
        "recovery",
        "wiring",
        # Worker processes (ADR 028): a supervisor of runtimes in child processes.
        "processes",
        "restarts",
        "supervisor_pipe",
        "worker_command",
    }


async def test_wiring_connects_the_client_and_sizes_the_runtime_pool(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        config = RuntimeConfig(pool_size=3)
        wiring = await Wiring.of(client, config, MaintenanceConfig())
        assert wiring.url == client.store.url
        store = await wiring.open_store()
        try:
            assert store.db.pool.get_max_size() == 3
            assert store.db.pool is not client.store.db.pool
        finally:
            await store.close()


async def test_wiring_recovers_an_empty_database_in_one_attempt(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        config = RuntimeConfig(startup_recovery=RecoveryPolicy(page_size=10, delay=0.01))
        wiring = await Wiring.of(client, config, MaintenanceConfig())
        report = await wiring.recover(client.clock)
        assert (report.requeued, report.failed, report.cancelled) == (0, 0, 0)
        assert report.attempts == 1
