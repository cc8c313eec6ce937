"""``priority_aging``: only long-waiting available jobs are aged.

Driven directly (no leader) in the seeded world of ``support.branch_world``: the branch
must change exactly the rows it should, and nothing else.
"""

from __future__ import annotations

from awa.maintenance.branches.priority_aging import PriorityAging
from support.branch_world import World


async def test_priority_aging_ages_only_long_waiting_available_jobs(world: World) -> None:
    result, before, after, changed = await world.run(PriorityAging())
    assert changed == {"available_old"}
    assert result.rows == {"aged": 1}
    old, new = before[world.ids["available_old"]][1], after[world.ids["available_old"]][1]
    assert (old["priority"], new["priority"]) == (3, 2)
    assert new["original_priority"] == 3
    assert {k for k in old if old[k] != new[k]} == {"priority"}
    # One level per run: waited an hour, step 300 s per level gained, so 2 -> 1 next.
    result, _, _, changed = await world.run(PriorityAging())
    assert changed == {"available_old"}
    assert (await world.live("available_old"))["priority"] == 1
    result, _, _, changed = await world.run(PriorityAging())
    assert changed == set()
    assert result.rows == {"aged": 0}
