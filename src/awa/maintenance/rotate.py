"""``rotate`` (hygiene lane): rotate and prune the terminal-history ring.

Finished jobs are written to the ring's current slot (a list partition of
``awa.jobs_done``). Each run (default every 60 s):

1. *prune*: every slot other than the current one whose rows are all past their state's
   retention is TRUNCATEd: constant time, no dead tuples, no long DELETE;
2. *rotate*: once the current slot is older than ``retention / (slots - 2)`` and the next
   slot is empty, the next slot becomes current (compare-and-set on the slot number, so two
   leaders cannot both rotate).

If the next slot still holds unexpired rows the ring waits (the current slot grows) rather
than dropping data. Metrics: rows ``slots_pruned``, ``rotated``.
"""

from __future__ import annotations

from awa.maintenance.branch import HYGIENE, Branch, BranchContext, BranchResult

__all__ = ["Rotate"]


class Rotate(Branch):
    name = "rotate"
    lane = HYGIENE
    default_interval = 60.0
    default_timeout = 60.0

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        retention = ctx.config.retention
        current, slots, rotated_at = await ctx.store.ring_state()
        pruned = deferred = 0
        for slot in range(slots):
            if slot == current or await ctx.store.slot_is_empty(slot):
                continue
            if await ctx.store.slot_is_expired(slot, retention, ctx.now):
                # Skipped (retried next pass) while a long reader holds the partition.
                if await ctx.store.truncate_slot(slot):
                    pruned += 1
                else:
                    deferred += 1
        period = max(retention.values()) / max(1, slots - 2)
        age = (ctx.clock.now() - rotated_at).total_seconds()
        rotated = 0
        following = (current + 1) % slots
        if age >= period and await ctx.store.slot_is_empty(following):
            rotated = int(await ctx.store.advance_ring(following, current, ctx.now))
        return BranchResult(
            {"slots_pruned": pruned, "slots_deferred": deferred, "rotated": rotated}
        )
