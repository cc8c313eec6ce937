"""Counters that tell the truth (issue 17), read from a real Prometheus scrape.

- ``awa.cron.fired`` / ``awa.cron.missed`` are recorded where ``cron_evaluate`` enqueues a
  fire and where it detects a missed one: once by driving the branch with a pinned clock
  (0 before the first fire, then 1, then a miss), once on a real runtime whose leader fires
  a schedule every second and misses one whose queue nobody serves.
- Known label sets exist at 0 from start (ADR 025): a runtime's ``awa.jobs.finished`` for a
  declared kind reads 0 before any job ran, then 1 after a real failure; a lane's overrun
  counter reads 0 per branch once leadership started.

Nothing here records a metric itself: every value comes from awa's own code paths, exported
by ``awa.telemetry.configure``'s Prometheus endpoint on loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
import anyio.to_thread
import pytest

import awa
from awa.config import MaintenanceConfig
from awa.cron import CronTable
from awa.maintenance import BranchContext
from awa.maintenance.branches.cron_evaluate import CronEvaluate
from awa.maintenance.branches.cron_sync import CronSync
from awa.store import Store
from awa.telemetry import Telemetry
from support.cron_world import T0
from support.prometheus import Samples, exporting, key, scrape


@pytest.fixture
async def exporter() -> AsyncIterator[Telemetry]:
    async for handle in exporting("awa-truth"):
        yield handle


def fired(schedule: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return key("awa_cron_fired_total", awa_cron_schedule=schedule)


def missed(schedule: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return key("awa_cron_missed_total", awa_cron_schedule=schedule)


async def scrape_until(
    handle: Telemetry, done: Callable[[Samples], bool], timeout: float = 30.0
) -> Samples:
    """Scrape until ``done`` holds (the counters move when the runtime gets there)."""
    with anyio.fail_after(timeout):
        while True:
            samples = await scrape(handle)
            if done(samples):
                return samples
            await anyio.sleep(0.1)


async def test_cron_counters_start_at_zero_then_count_a_fire_and_a_miss(
    database_url: str, exporter: Telemetry
) -> None:
    clock = awa.FakeClock(T0)
    table = CronTable()
    table.add("tick", "*/10 * * * * *", "report", miss_tolerance=5.0)
    store = await Store.open(database_url, max_size=2)
    try:
        ctx = BranchContext(
            store=store,
            clock=clock,
            config=MaintenanceConfig(startup_jitter=0),
            metrics=exporter.instruments,
        )
        await CronSync(table, "test").run_once(ctx)
        branch = CronEvaluate()
        clock.advance(1)  # before the first instant (+10 s): nothing to fire yet
        first = await branch.run_once(ctx)
        assert first.rows["fired"] == 0
        before = await scrape(exporter)
        assert (before[fired("tick")], before[missed("tick")]) == (0, 0)

        clock.advance(9.1)  # the +10 s instant is due
        assert (await branch.run_once(ctx)).rows["fired"] == 1
        after_fire = await scrape(exporter)
        assert (after_fire[fired("tick")], after_fire[missed("tick")]) == (1, 0)

        clock.advance(6)  # its job has not completed within the 5 s tolerance
        assert (await branch.run_once(ctx)).rows["missed_alert"] == 1
        assert (await branch.run_once(ctx)).rows["missed_alert"] == 0  # reported once
        after_miss = await scrape(exporter)
        assert (after_miss[fired("tick")], after_miss[missed("tick")]) == (1, 1)
    finally:
        await store.close()


async def test_a_runtime_leader_counts_real_fires_and_a_real_miss(
    database_url: str, exporter: Telemetry
) -> None:
    client = awa.Client(database_url, metrics=exporter.instruments)

    @client.handler("beat")
    async def beat(ctx: awa.JobContext) -> None:
        return None

    client.schedule("beat", "* * * * * *", "beat")
    # Fires into a queue this runtime does not serve: never succeeds, so it is missed.
    client.schedule("stranded", "* * * * * *", "stranded", queue="nowhere", miss_tolerance=1.0)
    maintenance = MaintenanceConfig(startup_jitter=0, election_interval=0.2)
    async with (
        client,
        awa.Runtime(client, awa.RuntimeConfig(queues={"default": 2}), maintenance=maintenance),
    ):
        samples = await scrape_until(
            exporter,
            lambda s: s.get(fired("beat"), 0) >= 1 and s.get(missed("stranded"), 0) >= 1,
        )
    assert samples[fired("stranded")] >= 1
    assert samples[missed("beat")] == 0  # its fires ran: series present, nothing missed
    jobs = await client_jobs(database_url, "beat")
    assert jobs >= samples[fired("beat")]  # every counted fire is a job in the database


async def client_jobs(database_url: str, schedule: str) -> int:
    store = await Store.open(database_url, max_size=1)
    try:
        rows = await store.cron.cron_list()
    finally:
        await store.close()
    (row,) = [r for r in rows if r["name"] == schedule]
    return int(row["fired_total"])


async def test_known_label_sets_read_zero_at_start_then_one_after_the_first_event(
    database_url: str, exporter: Telemetry
) -> None:
    client = awa.Client(database_url, metrics=exporter.instruments)

    @client.handler("doomed")
    async def doomed(ctx: awa.JobContext) -> None:
        raise ValueError("always fails")

    failed = key(
        "awa_jobs_finished_total", awa_queue="default", awa_job_kind="doomed", awa_outcome="failed"
    )
    claimed = key("awa_jobs_claimed_total", awa_queue="default")
    overrun = key(
        "awa_maintenance_branch_overrun_total",
        awa_maintenance_lane="slo",
        awa_maintenance_branch="promote_scheduled",
        branch="promote_scheduled",
    )
    maintenance = MaintenanceConfig(
        startup_jitter=0, election_interval=0.2, leader_check_interval=0.2
    )
    runtime = awa.Runtime(client, awa.RuntimeConfig(queues={"default": 2}), maintenance=maintenance)
    async with client, runtime:
        leader = runtime.leader
        assert leader is not None
        with anyio.fail_after(15):
            await leader.wait_until_leader()
        at_start = await scrape_until(exporter, lambda s: overrun in s)
        assert at_start[failed] == 0  # before any job: present, at 0
        assert at_start[claimed] == 0
        assert at_start[overrun] == 0
        assert at_start[key("awa_maintenance_elections_total")] == 1
        rescued = key("awa_jobs_rescued_total", awa_rescue_reason="heartbeat", awa_outcome="failed")
        assert at_start[rescued] == 0

        job = await client.insert("doomed", {}, max_attempts=1)
        after = await scrape_until(exporter, lambda s: s[failed] >= 1)
        assert (after[failed], after[claimed]) == (1, 1)
        assert (await client.get_job(job.id)).state == "failed"
