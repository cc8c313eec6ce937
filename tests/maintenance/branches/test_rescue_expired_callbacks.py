"""``rescue_expired_callbacks``: only parked jobs whose callback timed out.

Driven directly (no leader) in the seeded world of ``support.branch_world``: the branch
must change exactly the rows it should, and nothing else.
"""

from __future__ import annotations

from awa.maintenance.branches.rescue_expired_callbacks import RescueExpiredCallbacks
from support.branch_world import World, decode, rescued_records


async def test_rescue_expired_callbacks_rescues_only_timed_out_parked_jobs(
    world: World,
) -> None:
    result, _, _, changed = await world.run(RescueExpiredCallbacks())
    assert changed == {"waiting_expired", "waiting_expired_last"}
    assert result.rows == {"retried": 1, "failed": 1}
    row = await world.live("waiting_expired")
    assert row["state"] == "retryable"
    assert row["callback_id"] is None and row["callback_timeout_at"] is None
    assert row["claimed_by"] is None
    (record,) = rescued_records(decode(row["errors"]))
    assert "callback" in record["message"]
    assert (await world.done("waiting_expired_last"))["state"] == "failed"
    pending = await world.live("waiting_pending")
    assert pending["state"] == "waiting_external"
    assert pending["callback_id"] is not None
