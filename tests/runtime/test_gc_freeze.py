"""ADR 021: a started runtime freezes the objects alive at start, unless told not to.

Each test starts with nothing frozen (``thawed_garbage_collector`` in tests/conftest.py)."""

from __future__ import annotations

import gc
import time

import anyio
import pytest

import awa
from awa.errors import ValidationError


async def run_one_job(database_url: str, config: awa.RuntimeConfig) -> None:
    client = awa.Client(database_url)
    done = anyio.Event()

    @client.handler("k")
    async def k(ctx: awa.JobContext) -> None:
        done.set()

    async with client, awa.Runtime(client, config):
        await client.insert("k", {})
        with anyio.fail_after(10):
            await done.wait()


async def test_a_started_runtime_freezes_what_it_holds(database_url: str) -> None:
    assert gc.get_freeze_count() == 0
    await run_one_job(database_url, awa.RuntimeConfig())
    frozen = gc.get_freeze_count()
    # The interpreter, asyncpg, anyio, OpenTelemetry and the runtime: tens of thousands.
    assert frozen > 10_000
    started = time.perf_counter()
    gc.collect()
    full_frozen = time.perf_counter() - started
    gc.unfreeze()
    started = time.perf_counter()
    gc.collect()
    full_thawed = time.perf_counter() - started
    # What the freeze is for: a full collection no longer walks those objects.
    assert full_frozen < full_thawed


async def test_freeze_gc_false_leaves_the_collector_alone(database_url: str) -> None:
    await run_one_job(database_url, awa.RuntimeConfig(freeze_gc=False))
    assert gc.get_freeze_count() == 0


def test_freeze_gc_must_be_a_bool() -> None:
    with pytest.raises(ValidationError, match="freeze_gc"):
        awa.RuntimeConfig(freeze_gc="yes")  # type: ignore[arg-type]


async def test_a_process_freezes_once_however_many_runtimes_start(database_url: str) -> None:
    await run_one_job(database_url, awa.RuntimeConfig())
    first = gc.get_freeze_count()
    garbage: list[list[int]] = [[] for _ in range(20_000)]  # alive: a 2nd freeze takes them
    for _ in range(2):
        await run_one_job(database_url, awa.RuntimeConfig())
    assert gc.get_freeze_count() <= first  # frozen objects may be freed, never added
    del garbage
