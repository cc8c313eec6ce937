"""Which queue a cron fire goes to, on a real PostgreSQL (issue 18's bug: a schedule for a
handler on ``mail`` enqueued into ``default``, where its jobs waited forever).

A schedule naming no queue fires into its handler's queue, whether the handler is
registered before or after the schedule is declared; a queue named by the schedule wins;
a kind without a handler in the publishing process falls back to ``default``; moving the
handler moves the stored schedule at the next sync. The first test runs a real runtime
(leader and worker, serving only ``mail``); the others drive ``cron_sync`` and
``cron_evaluate`` by hand with a ``FakeClock``.
"""

from __future__ import annotations

import anyio
import asyncpg
import pytest

import awa
from awa.config import MaintenanceConfig
from awa.maintenance.branches.cron_evaluate import CronEvaluate
from awa.maintenance.branches.cron_sync import CronSync
from awa.store import Store
from support.cron_world import T0
from support.store_world import ctx_for

ORDERS = ["schedule_then_handler", "handler_then_schedule"]


async def cron_job_queues(raw: asyncpg.Connection, schedule: str) -> list[str]:
    rows = await raw.fetch(
        "SELECT queue FROM awa.all_jobs WHERE metadata -> 'awa.cron' ->> 'schedule' = $1"
        " ORDER BY id",
        schedule,
    )
    return [str(r["queue"]) for r in rows]


async def stored_queue(raw: asyncpg.Connection, schedule: str) -> str:
    queue = await raw.fetchval("SELECT queue FROM awa.cron_schedules WHERE name = $1", schedule)
    assert queue is not None, f"schedule {schedule!r} was not published"
    return str(queue)


async def noop(ctx: awa.JobContext) -> None:
    return None


@pytest.mark.parametrize("order", ORDERS)
async def test_a_fire_runs_on_a_runtime_serving_only_the_handlers_queue(
    database_url: str, raw: asyncpg.Connection, order: str
) -> None:
    ran: list[str] = []
    done = anyio.Event()
    client = awa.Client(database_url)

    async def send_digest(ctx: awa.JobContext) -> None:
        ran.append(ctx.job.queue)
        done.set()

    def declare_schedule() -> None:
        client.schedule("digest", "* * * * * *", "send_digest")

    def register_handler() -> None:
        client.handler("send_digest", queue="mail")(send_digest)

    steps = [declare_schedule, register_handler]
    for step in steps if order == "schedule_then_handler" else reversed(steps):
        step()

    maintenance = MaintenanceConfig(startup_jitter=0, election_interval=0.2)
    config = awa.RuntimeConfig(queues={"mail": 2})
    async with client, awa.Runtime(client, config, maintenance=maintenance):
        with anyio.fail_after(30):  # a timeout, not a measurement: a fire in `default` never runs
            await done.wait()
    assert ran and set(ran) == {"mail"}
    assert await stored_queue(raw, "digest") == "mail"
    queues = await cron_job_queues(raw, "digest")
    assert queues and set(queues) == {"mail"}, queues


@pytest.mark.parametrize("order", ORDERS)
async def test_the_schedule_queue_wins_and_an_unhandled_kind_goes_to_default(
    database_url: str, mstore: Store, raw: asyncpg.Connection, order: str
) -> None:
    clock = awa.FakeClock(T0)
    client = awa.Client(database_url, clock=clock)

    def declare_schedules() -> None:
        client.schedule("by_handler", "*/10 * * * * *", "send_digest")
        client.schedule("named", "*/10 * * * * *", "send_digest", queue="bulk")
        client.schedule("named_default", "*/10 * * * * *", "send_digest", queue="default")
        client.schedule("unhandled", "*/10 * * * * *", "nobody_handles_this")

    def register_handler() -> None:
        client.handler("send_digest", queue="mail")(noop)

    steps = [declare_schedules, register_handler]
    for step in steps if order == "schedule_then_handler" else reversed(steps):
        step()

    await CronSync(client.cron, "test").run_once(ctx_for(mstore, clock))
    clock.advance(10.2)
    result = await CronEvaluate().run_once(ctx_for(mstore, clock))
    assert result.rows["fired"] == 4
    expected = {"by_handler": "mail", "named": "bulk", "named_default": "default"}
    expected["unhandled"] = "default"
    for name, queue in expected.items():
        assert await stored_queue(raw, name) == queue, name
        assert await cron_job_queues(raw, name) == [queue], name


async def test_moving_the_handler_moves_the_stored_schedule_at_the_next_sync(
    database_url: str, mstore: Store, raw: asyncpg.Connection
) -> None:
    """A new deploy registers the handler on another queue: the resolved declaration (and
    so its fingerprint) changes, and the sync rewrites the stored queue."""
    clock = awa.FakeClock(T0)
    for queue in ("mail", "mail_v2"):
        client = awa.Client(database_url, clock=clock)
        client.schedule("digest", "*/10 * * * * *", "send_digest")
        client.handler("send_digest", queue=queue)(noop)
        await CronSync(client.cron, "test").run_once(ctx_for(mstore, clock))
        assert await stored_queue(raw, "digest") == queue
    clock.advance(10.2)
    await CronEvaluate().run_once(ctx_for(mstore, clock))
    assert await cron_job_queues(raw, "digest") == ["mail_v2"]
