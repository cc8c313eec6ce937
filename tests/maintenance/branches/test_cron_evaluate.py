"""``cron_evaluate``: each misfire and overlap policy, on-time fires and bounded catch-up,
missed-fire detection and its hook, and the compare-and-set of the mark that keeps two
evaluators (or an operator's pause) from firing an instant twice (or at all).

Driven directly (no leader) with time pinned by ``FakeClock``.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime

import anyio
import asyncpg
import pytest

import awa
from awa.cron import CronTable
from awa.maintenance.branches.cron_evaluate import CronEvaluate, MissedFire
from awa.store import Store
from support.branch_world import one
from support.cron_world import T0, every_10s, fired_instants, sync
from support.store_world import ctx_for


@pytest.mark.parametrize(
    ("misfire", "window", "fired", "missed"),
    [
        ("skip", 3600.0, [], 9),
        ("catchup_all", 3600.0, [10, 20, 30, 40, 50, 60, 70, 80, 90], 0),
        ("catchup_latest", 3600.0, [90], 8),
        ("catchup_all", 35.0, [70, 80, 90], 6),
        ("compress", 35.0, [90], 8),
    ],
)
async def test_misfire_policies_after_an_outage(
    mstore: Store,
    raw: asyncpg.Connection,
    misfire: str,
    window: float,
    fired: list[int],
    missed: int,
) -> None:
    clock = awa.FakeClock(T0)
    await sync(mstore, clock, every_10s(misfire=misfire, catchup_window=window))
    clock.advance(97)  # no leader for 97 s: instants +10 … +90 are all ≥ 7 s late
    result = await CronEvaluate().run_once(ctx_for(mstore, clock))
    assert result.rows["fired"] == len(fired)
    assert result.rows["missed"] == missed
    expected = [(T0.timestamp() + s) for s in fired]
    got = [datetime.fromisoformat(t).timestamp() for t in await fired_instants(raw, "tick")]
    assert got == expected  # oldest first, each carrying its scheduled instant
    row = await one(raw, "SELECT * FROM awa.cron_schedules WHERE name = 'tick'")
    assert row["missed_total"] == missed and row["fired_total"] == len(fired)
    assert row["next_fire_at"].timestamp() == T0.timestamp() + 100

    # A second pass at the same time decides nothing again.
    again = await CronEvaluate().run_once(ctx_for(mstore, clock))
    assert again.rows["fired"] == 0 and again.rows["missed"] == 0


async def test_on_time_fire_and_bounded_catch_up_per_pass(
    mstore: Store, raw: asyncpg.Connection
) -> None:
    clock = awa.FakeClock(T0)
    await sync(mstore, clock, every_10s(misfire="catchup_all", max_catchup=4))
    clock.advance(10.2)
    first = await CronEvaluate().run_once(ctx_for(mstore, clock))
    assert first.rows["fired"] == 1 and not first.more  # a normal trigger
    clock.advance(90)  # 9 more instants due
    branch = CronEvaluate()
    second = await branch.run_once(ctx_for(mstore, clock))
    assert second.rows["fired"] == 4 and second.more  # bounded, asks to run again at once
    third = await branch.run_once(ctx_for(mstore, clock))
    fourth = await branch.run_once(ctx_for(mstore, clock))
    assert (third.rows["fired"], fourth.rows["fired"]) == (4, 1)
    instants = await fired_instants(raw, "tick")
    assert len(instants) == len(set(instants)) == 10


@pytest.mark.parametrize(
    ("overlap", "job_state", "fires"),
    [
        ("skip", "available", 0),
        ("skip", "running", 0),
        ("buffer_one", "available", 0),
        ("buffer_one", "running", 1),
        ("allow", "available", 1),
    ],
)
async def test_overlap_policies(
    mstore: Store,
    raw: asyncpg.Connection,
    overlap: str,
    job_state: str,
    fires: int,
) -> None:
    clock = awa.FakeClock(T0)
    await sync(mstore, clock, every_10s(overlap=overlap))
    clock.advance(10.1)
    assert (await CronEvaluate().run_once(ctx_for(mstore, clock))).rows["fired"] == 1
    if job_state == "running":
        await raw.execute(
            "UPDATE awa.jobs SET state = 'running', attempt = 1, claimed_by = 'w',"
            " attempted_at = now(), heartbeat_at = now()"
        )
    clock.advance(10)
    result = await CronEvaluate().run_once(ctx_for(mstore, clock))
    assert result.rows["fired"] == fires
    assert result.rows["overlap_skipped"] == 1 - fires


async def test_missed_fire_is_detected_once_even_under_skip(
    mstore: Store, raw: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    clock = awa.FakeClock(T0)
    await sync(mstore, clock, every_10s(miss_tolerance=5.0))
    seen: list[MissedFire] = []
    branch = CronEvaluate(on_missed=seen.append)
    clock.advance(10.1)
    first = await branch.run_once(ctx_for(mstore, clock))
    assert first.rows["fired"] == 1 and first.rows["missed_alert"] == 0
    clock.advance(6)  # the fire's job has not completed within the 5 s tolerance
    with caplog.at_level(logging.WARNING, logger="awa.cron"):
        second = await branch.run_once(ctx_for(mstore, clock))
        third = await branch.run_once(ctx_for(mstore, clock))
    assert (second.rows["missed_alert"], third.rows["missed_alert"]) == (1, 0)
    assert [m.instant.timestamp() for m in seen] == [T0.timestamp() + 10]
    assert sum("MISSED" in r.getMessage() for r in caplog.records) == 1


async def test_a_failing_on_missed_hook_is_logged_and_changes_nothing_else(
    mstore: Store, raw: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """The user's hook raising must not hide the fires already committed, nor be taken for
    a broken schedule."""
    clock = awa.FakeClock(T0)
    await sync(mstore, clock, every_10s(miss_tolerance=5.0))

    def hook(missed: MissedFire) -> None:
        raise TypeError("the hook's own bug")

    branch = CronEvaluate(on_missed=hook)
    clock.advance(10.1)
    await branch.run_once(ctx_for(mstore, clock))
    clock.advance(6)
    with caplog.at_level(logging.ERROR, logger="awa.cron"):
        result = await branch.run_once(ctx_for(mstore, clock))
    assert result.rows["missed_alert"] == 1 and result.rows["invalid"] == 0
    assert result.next_due_in is not None  # the schedule still asks for its next fire
    assert any("on_missed hook failed" in r.getMessage() for r in caplog.records)


async def test_concurrent_evaluators_never_fire_an_instant_twice(
    database_url: str, raw: asyncpg.Connection
) -> None:
    """Two evaluators (a failover or a split brain) race on the same schedules: the
    compare-and-set of the mark lets exactly one enqueue each instant."""
    stores = [await Store.open(database_url, max_size=2) for _ in range(2)]
    try:
        clock = awa.SystemClock()
        table = CronTable()
        for i in range(3):
            table.add(f"s{i}", "* * * * * *", "report", misfire="catchup_all")
        await sync(stores[0], clock, table)
        outcomes: Counter[str] = Counter()

        async def evaluate(store: Store) -> None:
            branch = CronEvaluate()
            with anyio.move_on_after(3.0):
                while True:
                    result = await branch.run_once(ctx_for(store, clock))
                    outcomes.update(result.rows)
                    await anyio.sleep(0.01)

        async with anyio.create_task_group() as tg:
            for store in stores:
                tg.start_soon(evaluate, store)
        for i in range(3):
            instants = await fired_instants(raw, f"s{i}")
            assert len(instants) >= 2
            assert len(instants) == len(set(instants)), "an instant was enqueued twice"
        assert outcomes["fired"] == sum([len(await fired_instants(raw, f"s{i}")) for i in range(3)])
    finally:
        for store in stores:
            await store.close()


async def test_schedule_paused_between_evaluation_and_enqueue_does_not_fire(
    database_url: str, mstore: Store, raw: asyncpg.Connection
) -> None:
    """The evaluator read the schedule as active, an operator paused it, then the evaluator
    tried to enqueue: the compare-and-set refuses, nothing is enqueued."""
    clock = awa.FakeClock(T0)
    await sync(mstore, clock, every_10s())
    clock.advance(10.2)
    (row,) = await mstore.cron.cron_active()  # the evaluator's read: active
    client = awa.Client(database_url)
    async with client:
        await client.pause_schedule("tick")  # … the operator's pause lands here
    fire = T0.timestamp() + 10
    params = [CronEvaluate._job(row, datetime.fromtimestamp(fire, UTC))]
    ids = await mstore.cron.cron_advance(
        "tick",
        expected_mark=row["evaluated_through"],
        new_mark=clock.now(),
        fires=params,
        last_fire_at=datetime.fromtimestamp(fire, UTC),
        missed=0,
        last_missed_at=None,
        overlapped=0,
        next_fire_at=None,
        now=clock.now(),
    )
    assert ids is None
    assert await fired_instants(raw, "tick") == []
    assert await raw.fetchval("SELECT count(*) FROM awa.events WHERE kind = 'cron.fired'") == 0
    clock.advance(30)
    result = await CronEvaluate().run_once(ctx_for(mstore, clock))
    assert result.rows["fired"] == 0  # still paused: never fires
