"""``dead_letter`` (hygiene lane): the dead-letter hold (ADR 009).

Per run (default every 10 s, timeout 30 s):

1. *publish* (only in a process that knows the application's declarations, ``policies``
   given): upsert this process's per-queue ``DeadLetterPolicy`` declarations into
   ``awa.dead_letter_policies`` and mark *orphaned* the policies nobody declared for
   ``orphan_after`` seconds (default 600; a rolling deploy may still run older code).
   Orphaned policies are kept: their letters stay and their retention still applies, but
   new failures of the queue are no longer moved. A pool-only maintenance process
   (``policies=None``) skips this and works from the stored policies.
2. *move*: up to ``batch`` (default 1000) ``failed`` jobs of queues with an active policy go
   from the terminal-history ring (``awa.jobs_done``) to ``awa.dead_letters``, whole rows
   with their error history, in one ``DELETE … RETURNING`` → ``INSERT`` statement.
3. *expire*: up to ``batch`` letters held longer than their queue's ``retention`` (counted
   from when they entered the hold) are deleted.

A full page on either step asks the lane to run again at once. A run that moved and expired
nothing reports ``idle``: the lane stretches the interval up to ``idle_stretch`` (6) times
(60 s by default), so an idle database pays for this branch once a minute; a failure reaches
the hold within that (ADR 029).

Metrics: rows ``declared``, ``orphaned``, ``moved``, ``expired`` (persisted health and the
lane's per-branch telemetry).

Failure behaviour: each step is one statement, so a failure or a crash rolls it back whole
and no job is ever in both tables or in neither; the lane logs, counts and retries the run
with capped backoff. The move does not fight ``rotate``: a TRUNCATE of a ring slot and the
move's DELETE lock the partition against each other, so a failed row is either moved before
the TRUNCATE or pruned by it; and pruning only takes slots whose rows are all past
retention (7 days for ``failed`` by default), which a branch running every 10 s never lets
a policy queue's failure reach. Rows an operator is retrying at that moment are skipped
(``SKIP LOCKED``) and picked up next run if still failed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Self

from awa.maintenance.branch import HYGIENE, Branch, BranchContext, BranchResult
from awa.maintenance.options import BranchOptions
from awa.store.dlq import DeadLetterPolicy

__all__ = ["DeadLetterHold"]

log = logging.getLogger("awa.dlq")

#: An unchanged policy is re-published at most this often (see ``dlq_upsert_policies``), so
#: orphaning must wait longer than that plus a run.
_REPUBLISH_S = 60.0


class DeadLetterHold(Branch):
    name = "dead_letter"
    lane = HYGIENE
    default_interval = 10.0
    default_timeout = 30.0
    idle_stretch = 6.0

    def __init__(
        self,
        policies: Iterable[DeadLetterPolicy] | None = None,
        synced_by: str = "unknown",
        *,
        orphan_after: float = 600.0,
        batch: int = 1000,
        **kwargs: float | None,
    ) -> None:
        super().__init__(**kwargs)
        if orphan_after < 2 * _REPUBLISH_S:
            raise ValueError(f"{self.name}: orphan_after must be >= {2 * _REPUBLISH_S:g}s")
        if not 1 <= batch <= 100_000:
            raise ValueError(f"{self.name}: batch must be 1..100000")
        #: Declared policies (a live collection, read at every run), or None: do not publish.
        self.policies = policies
        self.synced_by = synced_by
        self.orphan_after = orphan_after
        self.batch = batch

    @classmethod
    def from_options(cls, options: BranchOptions) -> Self | None:
        """With the application's dead-letter policies (none in a pool-only process)."""
        return cls(options.dead_letters, options.synced_by, interval=options.interval(cls.name))

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        store = ctx.store
        declared = orphaned = 0
        if self.policies is not None:
            policies = list(self.policies)
            await store.dlq.dlq_upsert_policies(policies, self.synced_by, ctx.now)
            gone = await store.dlq.dlq_orphan_policies(
                [p.queue for p in policies], self.orphan_after, ctx.now
            )
            for queue in gone:
                log.warning(
                    "dead-letter policy of queue %r is no longer declared by any process: "
                    "marked orphaned (its letters are kept; new failures stay in history)",
                    queue,
                )
            declared, orphaned = len(policies), len(gone)
        moved = await store.dlq.dlq_move(self.batch, ctx.now)
        if moved:
            log.info("moved %d failed job(s) to the dead-letter hold", len(moved))
        expired = await store.dlq.dlq_expire(self.batch, ctx.now)
        rows = {"declared": declared, "orphaned": orphaned, "moved": len(moved), "expired": expired}
        return BranchResult(
            rows,
            more=len(moved) >= self.batch or expired >= self.batch,
            idle=not moved and not expired,
        )
