"""Shared pieces of the cron tests (``tests/cron/`` and the ``cron_sync`` and
``cron_evaluate`` branch tests): a pinned start instant, a ten-second schedule, publishing
a table through ``CronSync`` and reading back the instants that were enqueued."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import asyncpg

import awa
from awa.cron import CronTable
from awa.maintenance.branches.cron_sync import CronSync
from awa.store import Store
from support.store_world import ctx_for

T0 = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)


async def sync(store: Store, clock: awa.Clock, table: CronTable) -> None:
    await CronSync(table, "test").run_once(ctx_for(store, clock))


async def fired_instants(raw: asyncpg.Connection, schedule: str) -> list[str]:
    rows = await raw.fetch(
        "SELECT metadata FROM awa.all_jobs WHERE metadata -> 'awa.cron' ->> 'schedule' = $1"
        " ORDER BY id",
        schedule,
    )
    return [json.loads(r["metadata"])["awa.cron"]["scheduled_at"] for r in rows]


def every_10s(name: str = "tick", **options: object) -> CronTable:
    table = CronTable()
    table.add(name, "*/10 * * * * *", "report", **options)
    return table
