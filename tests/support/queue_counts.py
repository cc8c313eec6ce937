"""The oracle of the queue_counts tests: the query ``queue_counts`` was before migration 19
(an exact GROUP BY of the live jobs and of the whole history on every call), and the
per-slot history totals the triggers maintain, compared with a recount."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from awa.store import Store

__all__ = ["OLD_QUEUE_COUNTS", "assert_counts_exact", "history_exact", "history_pending"]

#: ``queue_counts`` as it was: O(live + history rows) per call. Same rows and columns. One
#: copy, shared with ``benchmarks/big_tables.py`` (its "old" figures).
OLD_QUEUE_COUNTS = (
    Path(__file__).resolve().parents[2] / "benchmarks" / "_support" / "queue_counts_before_0019.sql"
).read_text()

Slots = dict[tuple[int, str, str], int]

_EXACT = (
    "SELECT slot, queue, state::text AS state, count(*) AS n FROM awa.jobs_done GROUP BY 1, 2, 3"
)
_PENDING = (
    "SELECT slot, queue, state::text AS state, sum(n) AS n FROM"
    " (SELECT slot, queue, state, n FROM awa.history_counts"
    "  UNION ALL SELECT slot, queue, state, n FROM awa.history_count_deltas) t"
    " GROUP BY 1, 2, 3 HAVING sum(n) <> 0"
)
_STORED = "SELECT slot, queue, state::text AS state, n FROM awa.history_counts WHERE n <> 0"


def _slots(rows: list[asyncpg.Record]) -> Slots:
    return {(int(r["slot"]), r["queue"], r["state"]): int(r["n"]) for r in rows}


async def history_exact(raw: asyncpg.Connection) -> Slots:
    return _slots(await raw.fetch(_EXACT))


async def history_pending(raw: asyncpg.Connection) -> Slots:
    """Stored totals plus pending deltas, per (slot, queue, state)."""
    return _slots(await raw.fetch(_PENDING))


async def assert_counts_exact(raw: asyncpg.Connection, store: Store, now: datetime) -> Slots:
    """``queue_counts`` equals the old exact query (same ``now``, so the same lags), and
    the history totals plus pending deltas equal a recount per slot, before and after a
    fold (``refresh_queue_stats``), after which no history delta is pending."""
    for _ in range(2):
        old = await raw.fetch(OLD_QUEUE_COUNTS, now)
        new = await store.admin.queue_counts(now)
        assert [(c.queue, c.state, c.count, c.lag_s, c.paused) for c in new] == [
            (r["queue"], r["state"], int(r["count"]), _float(r["lag_s"]), r["paused"]) for r in old
        ]
        exact = await history_exact(raw)
        assert await history_pending(raw) == exact
        await store.maintenance.refresh_queue_stats(None)
        assert await raw.fetchval("SELECT count(*) FROM awa.history_count_deltas") == 0
        assert _slots(await raw.fetch(_STORED)) == exact
    return exact


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
