"""``rotate`` (hygiene lane): rotate and prune the terminal-history ring.

Finished jobs are written to the ring's current slot (a list partition of
``awa.jobs_done``). Each run (default every 60 s) is one transaction (``ring_pass``: the ring
row-locked first, fenced by the leadership term, so an overlapping leader or ``tick()``
cannot interleave with it; ADR 012):

1. *prune*: every slot other than the current one whose rows are all past their state's
   retention is TRUNCATEd: constant time, no dead tuples, no long DELETE. A slot whose lock
   is not granted at once (a long reader) is skipped and retried next run (``deferred``);
2. *rotate*: once the current slot is older than ``retention / (slots - 2)`` (by the
   database clock) and the next slot is empty, the next slot becomes current
   (compare-and-set on the slot number).

All checks run before the first TRUNCATE, so the partitions it locks are held only for the
few statements left before commit. If the next slot still holds unexpired rows the ring
waits (the current slot grows) rather than dropping data. Metrics: rows ``slots_pruned``,
``slots_deferred``, ``rotated``.
"""

from __future__ import annotations

from awa.maintenance.branch import HYGIENE, Branch, BranchContext, BranchResult
from awa.store.ring import RingPass

__all__ = ["Rotate"]


class Rotate(Branch):
    name = "rotate"
    lane = HYGIENE
    default_interval = 60.0
    default_timeout = 60.0

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        return await ctx.store.maintenance.ring_pass(lambda ring: self._pass(ring, ctx))

    async def _pass(self, ring: RingPass, ctx: BranchContext) -> BranchResult:
        retention = ctx.config.retention
        state = await ring.lock(ctx.now)
        if state is None:  # another pass is running: it does this one's work
            return BranchResult({"slots_pruned": 0, "slots_deferred": 0, "rotated": 0})
        current, slots = state.current_slot, state.slot_count
        expired = [
            slot
            for slot in range(slots)
            if slot != current
            and not await ring.slot_is_empty(slot)
            and await ring.slot_is_expired(slot, retention, ctx.now)
        ]
        pruned = [slot for slot in expired if await ring.truncate(slot)]
        period = max(retention.values()) / max(1, slots - 2)
        following = (current + 1) % slots
        rotated = 0
        if state.age_s >= period and await ring.slot_is_empty(following):
            rotated = int(await ring.advance(following, current, ctx.now))
        return BranchResult(
            {
                "slots_pruned": len(pruned),
                "slots_deferred": len(expired) - len(pruned),
                "rotated": rotated,
            }
        )
