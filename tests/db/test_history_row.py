"""``awa.history_row`` (migration 11) builds the same history row as the one move that still
spells its columns out (``complete_batch``, kept inline on the hot path: ADR 016), and the
planner inlines it (no per-row function call) wherever a statement calls it."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import asyncpg

import awa
from awa.db.queries import load_queries
from awa.store import Store

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


async def test_history_row_matches_the_inline_completion(
    store: Store, raw: asyncpg.Connection
) -> None:
    params = awa.InsertParams("k", args={"a": 1}, tags=["t"], metadata={"m": 2})
    await store.jobs.insert_job(params, now=NOW)
    [job] = await store.jobs.claim_batch("default", ["k"], 1, "worker-1", NOW)
    built = await raw.fetchrow(
        """SELECT h.* FROM awa.jobs j, awa.ring_state r,
                  awa.history_row(j, r.current_slot, 'completed', $2, j.errors,
                                  '{"p": 3}'::jsonb, '{"r": 4}'::jsonb) h
            WHERE j.id = $1""",
        job.id,
        NOW,
    )
    assert built is not None
    applied = await store.jobs.complete_batch(
        [job.id], [job.run_lease], [{"r": 4}], NOW, progress=[{"p": 3}]
    )
    assert applied == {job.id}
    stored = await raw.fetchrow("SELECT * FROM awa.jobs_done WHERE id = $1", job.id)
    assert stored is not None
    assert dict(built) == dict(stored)


async def test_every_caller_of_history_row_has_it_inlined(raw: asyncpg.Connection) -> None:
    callers = {n: q.sql for n, q in load_queries().items() if "awa.history_row(" in q.sql}
    assert len(callers) == 6, sorted(callers)  # a new caller must be checked here too
    for name, sql in callers.items():
        params = max(int(p) for p in re.findall(r"\$(\d+)", sql))
        plan = await raw.fetch(f"EXPLAIN (VERBOSE, COSTS OFF) {sql}", *([None] * params))
        text = "\n".join(r[0] for r in plan)
        assert "history_row" not in text, f"{name}: awa.history_row is not inlined\n{text}"
