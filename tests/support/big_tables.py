"""Big tables for plan tests (issue 19): a burst of jobs that went through ``awa.jobs`` and
on to history, leaving a fixed handful of live jobs spread over the heap pages the burst
allocated, so a statement that scans the table reads every page and one served by an index
reads the live rows only.

The burst is set-based (``generate_series``), then moved to history by the same
``awa.history_row`` the completion statements use, and the table is vacuumed (so pages
are empty but allocated, as after a real burst): a job loop of 200k runs would take
minutes and exercise nothing these tests check. What is measured is the branch statement
itself, with ``EXPLAIN (ANALYZE, BUFFERS)`` inside a rolled-back transaction.
"""

from __future__ import annotations

import json
import re
from typing import Any

import asyncpg

__all__ = [
    "buffers",
    "burst",
    "explain",
    "index_searches",
    "plan_nodes",
    "read_buffers",
    "scans_of",
]

#: The live states the kept jobs cycle through.
_LIVE = "ARRAY['available','scheduled','running','retryable','waiting_external']::awa.job_state[]"


async def burst(conn: asyncpg.Connection, history: int, live: int = 40) -> None:
    """``history`` jobs through ``awa.jobs`` into history; ``live`` of them, evenly spaced
    over the burst (so over its heap pages), stay live in the five live states, in three
    queues and seven kinds, available ones waiting an hour at priorities 2..4."""
    every = max(1, history // live)
    await conn.execute(
        f"""
        INSERT INTO awa.jobs (kind, queue, state, priority, original_priority, max_attempts,
                              run_at, created_at, callback_id, callback_timeout_at)
        SELECT 'k' || (g / {every}) % 7, 'q' || (g / {every}) % 3,
               ({_LIVE})[1 + (g / {every}) % 5],
               2 + (g / {every}) % 3, 2 + (g / {every}) % 3, 5, now() - interval '1 hour', now(),
               CASE WHEN ({_LIVE})[1 + (g / {every}) % 5] = 'waiting_external'
                    THEN gen_random_uuid() END,
               now() + interval '1 hour'
          FROM generate_series(1, $1::int) g
        """,
        history,
    )
    first = await conn.fetchval("SELECT min(id) FROM awa.jobs")
    await conn.execute(
        """
        WITH gone AS (
            DELETE FROM awa.jobs j
             WHERE (j.id - $1) % $2 <> 0 OR (j.id - $1) / $2 >= $3
            RETURNING j
        )
        INSERT INTO awa.jobs_done
        SELECT h.* FROM gone g, awa.ring_state r,
               awa.history_row(g.j, r.current_slot, 'completed', now(), (g.j).errors,
                               (g.j).progress, NULL) h
        """,
        first,
        every,
        live,
    )
    await conn.execute("VACUUM ANALYZE awa.jobs")
    await conn.execute("ANALYZE awa.jobs_done")


def plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of a JSON plan, depth first."""
    return [node, *(n for child in node.get("Plans", []) for n in plan_nodes(child))]


async def explain(conn: asyncpg.Connection, sql: str, *args: object) -> dict[str, Any]:
    """The executed plan of ``sql`` (rolled back): its root node, whose buffer counts
    include every node below it."""
    tx = conn.transaction()
    await tx.start()
    try:
        text = await conn.fetchval(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF, FORMAT JSON) " + sql,
            *args,
        )
    finally:
        await tx.rollback()
    root: dict[str, Any] = json.loads(text)[0]["Plan"]
    return root


def buffers(root: dict[str, Any]) -> int:
    """Shared buffers the plan touched (hit or read)."""
    return int(root["Shared Hit Blocks"]) + int(root["Shared Read Blocks"])


def _reads(root: dict[str, Any], table: str) -> list[dict[str, Any]]:
    """The scans that look for rows of ``table``, lookups by primary key left out (an
    UPDATE joining the rows it picked costs the btree's depth per row written, O(work ·
    log n), whatever the statement reads)."""
    return [
        n
        for n in plan_nodes(root)
        if n.get("Relation Name") == table
        and str(n["Node Type"]).endswith("Scan")
        and f"{table}_pkey" not in {str(c.get("Index Name")) for c in plan_nodes(n)}
    ]


def read_buffers(root: dict[str, Any], table: str) -> int:
    """Buffers of the scans that look for rows of ``table`` (each scan's count includes
    its bitmap index scan)."""
    return sum(
        int(n["Shared Hit Blocks"]) + int(n["Shared Read Blocks"]) for n in _reads(root, table)
    )


def index_searches(root: dict[str, Any], table: str) -> int:
    """Index descents of those scans (PostgreSQL 18's ``Index Searches``, over all loops):
    each costs one page per btree level, and a burst may leave a btree a level deeper."""
    return sum(int(c.get("Index Searches", 0)) for n in _reads(root, table) for c in plan_nodes(n))


def scans_of(root: dict[str, Any], table: str) -> list[str]:
    """The scan node types that read ``table`` (``jobs``; ``jobs_done`` matches its
    partitions too)."""
    pattern = re.compile(rf"{table}(_\d+)?")
    return [
        str(n["Node Type"])
        for n in plan_nodes(root)
        if pattern.fullmatch(str(n.get("Relation Name", "")))
    ]
