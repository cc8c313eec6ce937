"""``rotate`` (hygiene lane): rotate and prune the terminal-history ring.

Finished jobs are written to the ring's current slot (a list partition of
``awa.jobs_done``). Each run (default every 60 s) is one transaction (``ring_pass``: the ring
row-locked first, fenced by the leadership term, so an overlapping leader or ``tick()``
cannot interleave with it; ADR 012):

1. *prune*: every slot other than the current one whose rows are all past their state's
   retention is TRUNCATEd: constant time, no dead tuples, no long DELETE. A slot whose
   completed rows (the bulk of history) are all past the completed retention, but which
   still holds rows kept longer (failed, cancelled: 7 days against 1 by default), has
   those few rows *carried* into the current slot, then is TRUNCATEd (ADR 035): the bulk
   goes by TRUNCATE, never row by row. A slot whose lock is not granted at once (a long
   reader) is skipped and retried next run (``deferred``);
2. *rotate*: once the current slot is older than ``retention["completed"] / (slots - 2)``
   (by the database clock) and the next slot is empty, the next slot becomes current
   (compare-and-set on the slot number). The ring's period follows the completed
   retention, so the ring spans it; rows kept longer ride along by being carried.

All checks run before the first TRUNCATE, so the partitions it locks are held only for the
few statements left before commit. If the next slot still holds unexpired rows the ring
waits (the current slot grows) rather than dropping data. Metrics: rows ``slots_pruned``,
``slots_deferred``, ``rotated``, ``rows_carried``.
"""

from __future__ import annotations

from awa.maintenance.branch import HYGIENE, Branch, BranchContext, BranchResult
from awa.store.ring import RingPass

__all__ = ["Rotate", "ring_period"]


def ring_period(retention: dict[str, float], slots: int) -> float:
    """Seconds a slot stays current: the completed retention spread over the slots that
    are neither current nor next (ADR 035)."""
    return retention["completed"] / max(1, slots - 2)


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
            return BranchResult(
                {"slots_pruned": 0, "slots_deferred": 0, "rotated": 0, "rows_carried": 0}
            )
        current, slots = state.current_slot, state.slot_count
        # A slot is carried once every row in it is past the completed retention (rows of
        # a state kept for less are gone by then too: cleanup deletes them).
        bulk = dict.fromkeys(retention, retention["completed"])
        expired: list[int] = []
        carried: list[int] = []
        for slot in range(slots):
            if slot == current or await ring.slot_is_empty(slot):
                continue
            if await ring.slot_is_expired(slot, retention, ctx.now):
                expired.append(slot)
            elif await ring.slot_is_expired(slot, bulk, ctx.now):
                carried.append(slot)
        rows_carried = 0
        pruned = 0
        for slot in carried:
            moved = await ring.carry(slot, current, retention, ctx.now)
            if moved is not None:
                pruned += 1
                rows_carried += moved
        pruned += sum([await ring.truncate(slot) for slot in expired])
        following = (current + 1) % slots
        rotated = 0
        if state.age_s >= ring_period(retention, slots) and await ring.slot_is_empty(following):
            rotated = int(await ring.advance(following, current, ctx.now))
        return BranchResult(
            {
                "slots_pruned": pruned,
                "slots_deferred": len(expired) + len(carried) - pruned,
                "rotated": rotated,
                "rows_carried": rows_carried,
            }
        )
