"""``promote_scheduled``: only due deferred jobs become available, in bounded pages.

Driven directly (no leader) in the seeded world of ``support.branch_world``: the branch
must change exactly the rows it should, and nothing else.
"""

from __future__ import annotations

from awa.maintenance.branches.promote_scheduled import PromoteScheduled
from support.branch_world import World
from support.listener import Listener


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


async def test_a_promotion_wakes_each_promoted_queue_once_at_commit(
    world: World, listener: Listener
) -> None:
    """Idle dispatchers of a queue hear of promoted work from the promotion's own statement
    (one ``awa_jobs`` notification per queue, however many of its jobs were promoted), not
    from their next poll; queues with nothing promoted hear nothing."""
    await world.raw.execute(
        "UPDATE awa.jobs SET queue = 'mail' WHERE id = $1", world.ids["scheduled_due"]
    )
    await world.raw.execute(
        "UPDATE awa.jobs SET queue = 'mail', state = 'scheduled', run_at = now() - interval '1 s'"
        " WHERE id = $1",
        world.ids["available"],
    )
    await world.raw.execute(
        "UPDATE awa.jobs SET queue = 'idle' WHERE id = $1", world.ids["scheduled_future"]
    )
    await listener.drain()  # nothing before the promotion counts

    result = await PromoteScheduled().run_once(world.ctx())

    assert result.rows == {"promoted": 3}
    woken = await listener.drain()
    assert sorted(woken) == [("awa_jobs", "default"), ("awa_jobs", "mail")]


async def test_a_foreign_infinite_run_at_neither_blocks_promotion_nor_schedules_a_wake(
    world: World,
) -> None:
    """A producer writing SQL by hand may store ``run_at = 'infinity'``; timestamp
    subtraction would raise on it and roll the whole promotion back. The due jobs beside it
    are promoted, and the branch asks for no wake-up at an infinite time."""
    await world.raw.execute(
        "UPDATE awa.jobs SET run_at = 'infinity' WHERE state IN ('scheduled', 'retryable')"
        " AND run_at > now()"
    )

    result = await PromoteScheduled().run_once(world.ctx())

    assert result.rows == {"promoted": 2}
    assert result.next_due_in is None
    due = [world.ids["scheduled_due"], world.ids["retryable_due"]]
    states = await world.raw.fetch("SELECT state FROM awa.jobs WHERE id = ANY($1::bigint[])", due)
    assert {r["state"] for r in states} == {"available"}
