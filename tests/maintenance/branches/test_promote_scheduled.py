"""``promote_scheduled``: only due deferred jobs become available, in bounded pages.

Driven directly (no leader) in the seeded world of ``support.branch_world``: the branch
must change exactly the rows it should, and nothing else.
"""

from __future__ import annotations

from awa.maintenance.branches.promote_scheduled import PromoteScheduled
from support.branch_world import World


async def test_promote_scheduled_promotes_only_due_deferred_jobs(world: World) -> None:
    result, before, after, changed = await world.run(PromoteScheduled())
    assert changed == {"scheduled_due", "retryable_due"}
    assert result.rows == {"promoted": 2}
    assert result.more is False
    for name in changed:
        old, new = before[world.ids[name]][1], after[world.ids[name]][1]
        assert new["state"] == "available"
        assert {k for k in old if old[k] != new[k]} == {"state"}
    # The next deferred job is the scheduled one, due in about an hour.
    assert result.next_due_in is not None
    assert 3000 < result.next_due_in <= 3600

    again, _, _, changed = await world.run(PromoteScheduled())
    assert changed == set()
    assert again.rows == {"promoted": 0}


async def test_promote_scheduled_pages_in_bounded_batches(world: World) -> None:
    await world.raw.execute(
        "UPDATE awa.jobs SET state = 'scheduled', run_at = now() - interval '1 min'"
        " WHERE id = ANY ($1::bigint[])",
        [world.ids[n] for n in ("available", "available_old", "available_top")],
    )
    first = await PromoteScheduled(batch=2).run_once(world.ctx())
    assert first.rows == {"promoted": 2}
    assert first.more is True
    second = await PromoteScheduled(batch=2).run_once(world.ctx())
    third = await PromoteScheduled(batch=2).run_once(world.ctx())
    assert first.total + second.total + third.total == 5
    assert third.more is False
