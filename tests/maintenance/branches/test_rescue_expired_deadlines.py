"""``rescue_expired_deadlines``: only attempts past their deadline plus the grace.

Driven directly (no leader) in the seeded world of ``support.branch_world``: the branch
must change exactly the rows it should, and nothing else.
"""

from __future__ import annotations

from awa.maintenance.branches.rescue_expired_deadlines import RescueExpiredDeadlines
from support.branch_world import World, decode, rescued_records


async def test_rescue_expired_deadlines_rescues_only_past_grace(world: World) -> None:
    result, _, _, changed = await world.run(RescueExpiredDeadlines())
    assert changed == {"running_deadline", "running_deadline_last"}
    assert result.rows == {"retried": 1, "failed": 1, "cancelled": 0}
    row = await world.live("running_deadline")
    assert row["state"] == "retryable"
    assert row["claimed_by"] is None and row["deadline_at"] is None
    assert row["run_at"] > await world.raw.fetchval("SELECT now()")
    (record,) = rescued_records(decode(row["errors"]))
    assert "deadline" in record["message"]
    failed = await world.done("running_deadline_last")
    assert failed["state"] == "failed"
    assert (await world.live("running_deadline_grace"))["state"] == "running"
