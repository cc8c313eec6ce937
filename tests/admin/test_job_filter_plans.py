"""Every filter of the console's jobs list reads the history through an index (ADR 032).

Checked on the plan, not on a timing: 80,000 finished jobs spread over the ring's 8
partitions (written set-based; the plan is what is under test, and ``benchmarks/
console_jobs.py`` measures the same query at 10M rows), then ``EXPLAIN`` of ``list_jobs``
for each filter, planned as the store runs it (``force_custom_plans``): no sequential scan
of any history partition, and the index that filter is meant to use. Rare values make the
point: a filter that matches 1 row in 20,000 is exactly what walks the whole id index or
scans every partition without its own index.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from awa.admin.jobs import JobFilter
from awa.db import connect
from awa.db.queries import sql_text
from awa.store import admin_bulk

ROWS = 80_000
EPOCH = datetime(2026, 11, 1, tzinfo=UTC)

_FILL = """
INSERT INTO awa.jobs_done (slot, id, kind, queue, args, state, priority, original_priority,
    attempt, max_attempts, run_at, created_at, attempted_at, finalized_at, tags, metadata,
    errors, run_lease)
SELECT (g * 8 / ($1::bigint + 1))::smallint, g,
       CASE WHEN g % 20000 = 7 THEN 'rare.kind' ELSE 'kind.' || g % 10 END,
       CASE WHEN g % 20000 = 11 THEN 'rare-queue' ELSE 'q' || g % 4 END,
       '{}', (ARRAY['completed', 'completed', 'completed', 'failed',
                    'cancelled'])[1 + g % 5]::awa.job_state,
       2, 2, 1, 25, t.at, t.at, t.at, t.at + interval '1 second',
       CASE WHEN g % 20000 = 3 THEN ARRAY['rare-tag']
            WHEN g % 10 = 0 THEN ARRAY['tenant:' || g % 7] ELSE '{}' END,
       '{}', '[]', 1
  FROM generate_series(1, $1::bigint) g,
       LATERAL (SELECT $2::timestamptz + interval '1 second' * g AS at) t
"""

#: filter -> (the parameters of list_jobs, the history index it must read)
CASES: dict[str, tuple[dict[str, Any], str]] = {
    "none": ({}, "id_idx"),
    "state": ({"state": "failed"}, "id_idx"),
    "queue": ({"queue": "rare-queue"}, "queue_id_idx"),
    "kind": ({"kind": "rare.kind"}, "kind_id_idx"),
    "tag": ({"tag": "rare-tag"}, "tags_idx"),
    "window": (
        {
            "since": EPOCH + timedelta(seconds=1_000),
            "until": EPOCH + timedelta(seconds=4_000),
        },
        "state_finalized_at_idx",
    ),
    "window_failed": (
        {
            "state": "failed",
            "since": EPOCH + timedelta(seconds=1_000),
            "until": EPOCH + timedelta(seconds=4_000),
        },
        "state_finalized_at_idx",
    ),
    "deep_page": ({"before_id": ROWS // 2}, "id_idx"),
}


def _scans(node: dict[str, Any], found: list[tuple[str, str, str]]) -> None:
    """(node type, relation, index) of every scan in the plan (a bitmap index scan names
    its index only; its heap scan, the relation)."""
    if "Relation Name" in node or "Index Name" in node:
        index = node.get("Index Name", "")
        relation = node.get("Relation Name") or re.sub(r"_[a-z_]*idx$", "", index)
        found.append((node["Node Type"], relation, index))
    for child in node.get("Plans", []):
        _scans(child, found)


@pytest.fixture
async def history(database_url: str) -> Any:
    conn = await connect(database_url)
    try:
        await conn.execute(_FILL, ROWS, EPOCH)
        await conn.execute("VACUUM ANALYZE awa.jobs_done")
        yield conn
    finally:
        await conn.close()


@pytest.mark.parametrize("case", sorted(CASES))
async def test_each_filter_reads_the_history_through_its_index(history: Any, case: str) -> None:
    params, wanted = CASES[case]
    args = [params.get(k) for k in ("state", "queue", "kind", "tag", "since", "until")]
    async with history.transaction():
        await history.execute(sql_text("force_custom_plans"))
        out = await history.fetchval(
            "EXPLAIN (FORMAT JSON) " + sql_text("list_jobs"), *args, params.get("before_id"), 50
        )
    plan = json.loads(out) if isinstance(out, str) else out
    scans: list[tuple[str, str, str]] = []
    _scans(plan[0]["Plan"], scans)
    history_scans = [s for s in scans if s[1].startswith("jobs_done")]
    assert history_scans, scans
    assert [s for s in history_scans if "Seq Scan" in s[0]] == [], scans
    used = {re.sub(r"^jobs_done_\d+_", "", s[2]) for s in history_scans if s[2]}
    assert wanted in used, (case, scans)


async def test_the_plan_check_can_fail(history: Any) -> None:
    """Without the queue index (dropped in a transaction rolled back after), the rare-queue
    filter reads something else: the check above would see it."""
    tx = history.transaction()
    await tx.start()
    try:
        await history.execute("DROP INDEX awa.jobs_done_queue_id_idx")
        await history.execute(sql_text("force_custom_plans"))
        out = await history.fetchval(
            "EXPLAIN (FORMAT JSON) " + sql_text("list_jobs"),
            None, "rare-queue", None, None, None, None, None, 50,
        )  # fmt: skip
    finally:
        await tx.rollback()
    plan = json.loads(out) if isinstance(out, str) else out
    scans: list[tuple[str, str, str]] = []
    _scans(plan[0]["Plan"], scans)
    assert scans and not any("queue_id_idx" in s[2] for s in scans)


def _rows_of(node: dict[str, Any], kind: str) -> float | None:
    """The planner's row estimate of the first ``kind`` node (depth first)."""
    if node["Node Type"] == kind:
        return float(node["Plan Rows"])
    for child in node.get("Plans", []):
        if (found := _rows_of(child, kind)) is not None:
            return found
    return None


async def test_a_bulk_filter_is_estimated_as_it_is(history: Any) -> None:
    """The bulk queries get the filter's state once (``admin_bulk._args``): given twice
    ("state = $1 AND state = ANY ($7)") the planner squared its selectivity, estimated
    5x too few matches, and at 10M rows chose to bitmap-scan and sort every match below
    the cursor on each batch (931 ms a batch instead of 35 ms, ADR 032)."""
    where = JobFilter.of(state="failed", queue="q1")
    args = (*admin_bulk._args(where), where.states_for("retry"))
    async with history.transaction():
        await history.execute(sql_text("bulk_custom_plans"))
        out = await history.fetchval("EXPLAIN (FORMAT JSON) " + sql_text("count_jobs"), *args)
        actual = await history.fetchval(sql_text("count_jobs"), *args)
    plan = json.loads(out) if isinstance(out, str) else out
    estimated = _rows_of(plan[0]["Plan"], "Append")
    assert actual == ROWS // 20  # g % 5 = 3 (failed) and g % 4 = 1 (q1)
    assert estimated is not None and actual / 2 <= estimated <= actual * 2, (estimated, actual)
