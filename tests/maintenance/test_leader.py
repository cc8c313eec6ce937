"""The maintenance leader on a real PostgreSQL: election, failover, auto lane mode, persisted
health and failing branches.

Every wait is a poll under a generous ``fail_after``; no wall-clock duration is asserted.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

import anyio
import asyncpg
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, Sum

import awa
from awa.config import MaintenanceConfig
from awa.maintenance import HYGIENE, SLO, Branch, BranchContext, BranchResult
from awa.maintenance.builtin import BUILTIN_BRANCHES
from awa.store import Store
from awa.telemetry import ELECTIONS, Instruments
from support.chaos import wait_for
from support.maintenance import lock_holders, maint_config

T = TypeVar("T")


class Counting(Branch):
    """A cheap branch that only counts its runs."""

    name = "counting"
    lane = SLO
    default_interval = 0.05

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls = 0

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        self.calls += 1
        return BranchResult({"counted": 1})


class HygieneCounting(Counting):
    name = "ticking"
    lane = HYGIENE


class Slow(Branch):
    """A hygiene branch whose body takes ``sleep`` seconds, far more than its interval."""

    name = "slow"
    lane = HYGIENE

    def __init__(self, sleep: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sleep = sleep

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        await anyio.sleep(self.sleep)
        return BranchResult({"slept": 1})


class Boom(Branch):
    """Always raises."""

    name = "boom"
    lane = HYGIENE

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls = 0

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        self.calls += 1
        raise RuntimeError(f"boom #{self.calls}")


class Hang(Branch):
    """Never finishes on its own: only its timeout ends it."""

    name = "hang"
    lane = HYGIENE

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


def metered() -> tuple[Instruments, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    return Instruments(MeterProvider(metric_readers=[reader])), reader


def counter_total(reader: InMemoryMetricReader, name: str) -> float:
    data = reader.get_metrics_data()
    total = 0.0
    if data is None:
        return total
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    assert isinstance(metric.data, Sum), metric.data  # a counter
                    total += sum(float(p.value) for p in metric.data.data_points)
    return total


@asynccontextmanager
async def maintenance_runtimes(
    url: str,
    count: int,
    config: MaintenanceConfig,
    branches: Callable[[], Sequence[Branch]] = list,
    metrics: Sequence[Instruments] | None = None,
) -> AsyncIterator[list[awa.Runtime]]:
    """``count`` maintenance-only runtimes (no queues), each with its own client."""
    async with AsyncExitStack() as stack:
        runtimes = []
        for i in range(count):
            client = awa.Client(url, metrics=metrics[i] if metrics else None)
            await stack.enter_async_context(client)
            runtime = awa.Runtime(
                client,
                awa.RuntimeConfig(queues={}),
                role="maintenance",
                maintenance=config,
                branches=list(branches()),
            )
            await stack.enter_async_context(runtime)
            runtimes.append(runtime)
        yield runtimes


def leaders(runtimes: Sequence[awa.Runtime]) -> list[awa.Runtime]:
    return [r for r in runtimes if r.leader is not None and r.leader.is_leader]


# ------------------------------------------------------------------------------ election


async def test_maintenance_only_runtime_accepts_empty_queues(database_url: str) -> None:
    async with maintenance_runtimes(database_url, 1, maint_config()) as (runtime,):
        assert runtime.dispatchers == []
        assert runtime.role == "maintenance"
        assert runtime.leader is not None
        with anyio.fail_after(15):
            await runtime.leader.wait_until_leader()


async def test_two_runtimes_elect_exactly_one_leader(
    database_url: str, raw: asyncpg.Connection
) -> None:
    async with maintenance_runtimes(database_url, 2, maint_config()) as runtimes:
        (leader,) = await wait_for(lambda: leaders(runtimes))
        (follower,) = [r for r in runtimes if r is not leader]
        assert leader.leader is not None and follower.leader is not None
        # Several election intervals: the follower keeps trying and keeps losing.
        for _ in range(40):
            assert leaders(runtimes) == [leader]
            await anyio.sleep(0.025)
        assert leader.leader.terms == 1
        assert follower.leader.terms == 0
        assert follower.leader.lanes == {}
        assert set(leader.leader.lanes) == {"slo", "hygiene"}
        assert len(await lock_holders(raw)) == 1
        row = await wait_for(lambda: raw.fetchrow("SELECT * FROM awa.maintenance_leader"))
        assert row["instance_id"] == leader.instance_id
        assert row["mode"] == "split"


async def test_terminated_leader_connection_hands_leadership_over(
    database_url: str, raw: asyncpg.Connection
) -> None:
    instruments = [metered(), metered()]
    async with maintenance_runtimes(
        database_url,
        2,
        maint_config(),
        branches=lambda: [Counting()],
        metrics=[m for m, _ in instruments],
    ) as runtimes:
        (old,) = await wait_for(lambda: leaders(runtimes))
        assert old.leader is not None
        old_stats = old.leader.stats["counting"]
        await wait_for(lambda: old_stats.runs >= 3)
        first = await wait_for(lambda: raw.fetchrow("SELECT * FROM awa.maintenance_leader"))
        (pid,) = await lock_holders(raw)

        assert await raw.fetchval("SELECT pg_terminate_backend($1)", pid)

        # Leadership is re-established (by either process) on a new backend, as a new term.
        def re_elected() -> list[awa.Runtime]:
            found = leaders(runtimes)
            terms = sum(r.leader.terms for r in runtimes if r.leader is not None)
            return found if terms == 2 else []

        (new,) = await wait_for(re_elected)
        assert new.leader is not None
        holders = await wait_for(lambda: lock_holders(raw))
        assert holders != [pid]
        assert len(holders) == 1
        # The old term's lanes are gone: its branch stats stopped moving.
        assert new.leader.stats["counting"] is not old_stats
        frozen = old_stats.runs
        await wait_for(lambda: new.leader is not None and new.leader.stats["counting"].runs >= 3)
        await anyio.sleep(0.3)
        assert old_stats.runs == frozen
        for _ in range(20):
            assert leaders(runtimes) == [new]
            await anyio.sleep(0.025)
        row = await wait_for(
            lambda: raw.fetchrow(
                "SELECT * FROM awa.maintenance_leader WHERE won_at > $1", first["won_at"]
            )
        )
        assert row["instance_id"] == new.instance_id
        elections = [counter_total(reader, ELECTIONS) for _, reader in instruments]
        assert sum(elections) == 2
        for runtime, count in zip(runtimes, elections, strict=True):
            assert runtime.leader is not None
            assert count == runtime.leader.terms


async def test_resign_gives_up_leadership_and_it_is_won_again(database_url: str) -> None:
    async with maintenance_runtimes(
        database_url, 2, maint_config(), branches=lambda: [Counting()]
    ) as runtimes:
        (old,) = await wait_for(lambda: leaders(runtimes))
        assert old.leader is not None
        old_stats = old.leader.stats["counting"]
        old.leader.resign()

        def re_elected() -> list[awa.Runtime]:
            terms = sum(r.leader.terms for r in runtimes if r.leader is not None)
            return leaders(runtimes) if terms == 2 else []

        (new,) = await wait_for(re_elected)
        assert new.leader is not None
        frozen = old_stats.runs
        await anyio.sleep(0.3)
        assert old_stats.runs == frozen
        assert leaders(runtimes) == [new]


# ------------------------------------------------------------------------------ auto mode


async def test_auto_mode_splits_lanes_when_an_slo_branch_is_starved(
    database_url: str, raw: asyncpg.Connection
) -> None:
    config = maint_config(mode="auto", intervals={"promote_scheduled": 0.1})
    async with maintenance_runtimes(
        database_url, 1, config, branches=lambda: [Slow(sleep=0.5, interval=0.05)]
    ) as (runtime,):
        leader = runtime.leader
        assert leader is not None
        with anyio.fail_after(15):
            await leader.wait_until_leader()
        row = await wait_for(lambda: raw.fetchrow("SELECT * FROM awa.maintenance_leader"))
        assert row["instance_id"] == runtime.instance_id
        if leader.mode == "single":  # still before the switch: one lane holds every branch
            assert row["mode"] == "single"
            assert set(leader.lanes) == {"single"}

        await wait_for(lambda: leader.mode == "split")
        assert leader.mode_reason is not None
        assert "promote_scheduled" in leader.mode_reason
        assert set(leader.lanes) == {"slo", "hygiene"}
        assert "slow" in leader.lanes["hygiene"].stats
        assert "promote_scheduled" in leader.lanes["slo"].stats
        assert leader.stats["promote_scheduled"].tracker.episodes >= 1
        row = await wait_for(
            lambda: raw.fetchrow("SELECT * FROM awa.maintenance_leader WHERE mode = 'split'")
        )
        assert row["instance_id"] == runtime.instance_id
        assert "promote_scheduled" in row["mode_reason"]
        # Once split, promote_scheduled runs again beside the slow branch.
        runs = leader.stats["promote_scheduled"].runs
        await wait_for(lambda: leader.stats["promote_scheduled"].runs >= runs + 3)
        assert leader.mode == "split"


# ------------------------------------------------------------------------- persisted health


async def test_health_is_persisted_per_branch(database_url: str, raw: asyncpg.Connection) -> None:
    async with maintenance_runtimes(
        database_url, 1, maint_config(), branches=lambda: [Slow(sleep=0.1, interval=0.02)]
    ) as (runtime,):
        leader = runtime.leader
        assert leader is not None
        await wait_for(lambda: leader.is_leader and leader.stats["slow"].tracker.episodes >= 1)

        async def persisted() -> dict[str, Any]:
            rows = await raw.fetch("SELECT * FROM awa.maintenance_health")
            by_branch = {r["branch"]: dict(r) for r in rows}
            slow = by_branch.get("slow")
            if slow and slow["overruns"] >= 1 and slow["delayed"]:
                return by_branch
            return {}

        health = await wait_for(persisted)

    expected = {cls.name: cls.lane for cls in BUILTIN_BRANCHES} | {"slow": HYGIENE}
    assert set(health) == set(expected)
    for name, lane in expected.items():
        row = health[name]
        assert row["lane"] == lane, name
        assert row["runs"] > 0, name
        assert row["errors"] == 0, name
        assert row["leader_instance"] == runtime.instance_id
        assert row["last_started_at"] is not None
        assert row["last_finished_at"] is not None
        assert row["last_duration_s"] is not None
    assert health["slow"]["interval_s"] == pytest.approx(0.02)
    assert health["slow"]["overruns"] >= 1
    assert health["slow"]["delayed"] is True
    assert health["promote_scheduled"]["delayed"] is False


async def test_health_names_the_single_lane_in_single_mode(
    database_url: str, raw: asyncpg.Connection
) -> None:
    async with maintenance_runtimes(database_url, 1, maint_config(mode="single")) as (runtime,):
        assert runtime.leader is not None
        rows = await wait_for(
            lambda: raw.fetch("SELECT branch, lane, runs FROM awa.maintenance_health")
        )
    assert {r["branch"] for r in rows} == {cls.name for cls in BUILTIN_BRANCHES}
    assert {r["lane"] for r in rows} == {"single"}


# ----------------------------------------------------------------------- failing branches


async def test_failing_branch_is_counted_logged_retried_and_isolated(
    database_url: str, raw: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="awa.maintenance")
    boom = Boom(interval=0.05)
    hang = Hang(interval=0.05, timeout=0.1)
    tick = HygieneCounting(interval=0.05)  # same lane as the failing ones
    async with maintenance_runtimes(
        database_url, 1, maint_config(), branches=lambda: [boom, hang, tick]
    ) as (runtime,):
        leader = runtime.leader
        assert leader is not None
        await wait_for(lambda: leader.is_leader)
        stats = leader.stats
        await wait_for(lambda: stats["boom"].runs >= 4 and stats["hang"].runs >= 3)
        ticks = stats["ticking"].runs
        await wait_for(lambda: stats["ticking"].runs >= ticks + 5)
        # Other built-in hygiene branches kept running too.
        assert stats["queue_stats"].runs >= 1
        assert stats["boom"].errors == stats["boom"].runs == boom.calls
        assert stats["boom"].last_error is not None
        assert stats["boom"].last_error.startswith("RuntimeError: boom #")
        assert stats["hang"].errors == stats["hang"].runs
        assert stats["hang"].last_error is not None
        assert "TimeoutError" in stats["hang"].last_error
        assert stats["ticking"].errors == 0
        assert leader.is_leader
        assert leader.lanes["hygiene"].stats["boom"] is stats["boom"]

        async def persisted() -> Any:
            return await raw.fetchrow(
                "SELECT * FROM awa.maintenance_health WHERE branch = 'boom' AND errors >= 2"
            )

        row = await wait_for(persisted)
        assert row["last_error"].startswith("RuntimeError: boom #")

    failures = [
        r
        for r in caplog.records
        if r.name == "awa.maintenance" and "boom" in r.getMessage() and "failed" in r.getMessage()
    ]
    assert len(failures) >= 4
    assert all(r.levelno == logging.WARNING for r in failures)


class SlowOnce(Branch):
    """A hygiene branch whose first body holds the lane for ``sleep`` seconds."""

    name = "slow_once"
    lane = HYGIENE

    def __init__(self, sleep: float) -> None:
        super().__init__(interval=3600)
        self.sleep = sleep
        self.done = anyio.Event()

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        await anyio.sleep(self.sleep)
        self.done.set()
        return BranchResult({})


async def test_health_keeps_the_worst_lateness_of_the_window_not_just_the_last(
    database_url: str,
) -> None:
    """A branch starved once and on time since: ``last_lateness_s`` looks healthy, so the
    health row also carries ``max_lateness_s`` over the window since the previous write,
    and the next window starts afresh."""
    slow, ticking = SlowOnce(0.6), HygieneCounting()
    config = maint_config(hygiene_capacity=1, health_interval=3600)
    async with maintenance_runtimes(database_url, 1, config, lambda: [slow, ticking]) as [rt]:
        leader = rt.leader
        assert leader is not None
        with anyio.fail_after(15):
            await slow.done.wait()
        after = ticking.calls
        await wait_for(lambda: ticking.calls >= after + 5)
        store = await Store.open(database_url, max_size=1)
        try:
            await leader.write_health(store)
            first = {r["branch"]: r for r in await store.maintenance.read_health()}["ticking"]
            await leader.write_health(store)
            second = {r["branch"]: r for r in await store.maintenance.read_health()}["ticking"]
        finally:
            await store.close()
    assert first["max_lateness_s"] >= 0.3  # it waited for most of the slow body
    assert first["last_lateness_s"] < first["max_lateness_s"] / 2
    assert second["max_lateness_s"] is None or second["max_lateness_s"] < 0.3
