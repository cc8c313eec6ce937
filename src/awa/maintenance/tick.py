"""A bounded maintenance pass: become leader if possible, run each due branch once, resign.

For scale-to-zero and externally scheduled deployments (a cron job, a serverless timer) that
cannot keep a leader running. ``tick`` waits at most ``wait`` seconds for the leadership
lock; if another process leads, it returns a report naming that leader and touches nothing.
Otherwise it runs, one after another, every branch whose persisted health says it is due
(never run, or started at least one interval ago; ``force`` runs all), with the same
accounting as the lanes (metrics, overrun tracking, persisted health, counters accumulated
onto the persisted ones), and releases the lock before returning.

Like a leader, a tick that wins the lock starts a new leadership term and runs every branch
on a store fenced by it (ADR 012): should the lock be lost and another process lead
meanwhile, the tick's remaining writes change nothing and it raises ``LeadershipLost``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import anyio

from awa.clock import Clock
from awa.config import MaintenanceConfig
from awa.errors import DatabaseUnavailable
from awa.maintenance.branch import Branch, BranchContext
from awa.maintenance.lane import BranchStats, Lane
from awa.maintenance.leader import TERM_WAIT
from awa.store import Store
from awa.store.leadership import LeaderConnection
from awa.store.maintenance import HealthRow
from awa.telemetry import Instruments

__all__ = ["BranchReport", "TickReport", "tick"]

log = logging.getLogger("awa.maintenance")

_ACQUIRE_POLL = 0.05


@dataclass(frozen=True)
class BranchReport:
    """What one branch did in a tick (``ran=False``: it was not due)."""

    branch: str
    lane: str
    ran: bool
    rows: dict[str, int] = field(default_factory=dict)
    duration_s: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class TickReport:
    """``leader``: whether this tick won leadership; if not, ``held_by`` names who leads."""

    instance_id: str
    leader: bool
    held_by: str | None
    branches: list[BranchReport]

    @property
    def errors(self) -> int:
        return sum(1 for b in self.branches if b.error is not None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "leader": self.leader,
            "held_by": self.held_by,
            "errors": self.errors,
            "branches": [b.__dict__ for b in self.branches],
        }


async def tick(
    url: str,
    instance_id: str,
    branches: Sequence[Branch],
    config: MaintenanceConfig,
    clock: Clock,
    metrics: Instruments,
    *,
    wait: float = 0.0,
    force: bool = False,
) -> TickReport:
    conn = await LeaderConnection.open(url)
    try:
        won = await _acquire_within(conn, wait, clock)
        term = await conn.begin_term(instance_id, TERM_WAIT, clock.db_now()) if won else None
        if term is None:
            if won:
                log.warning(
                    "maintenance tick: transactions of the previous term still run after %gs",
                    TERM_WAIT,
                )
                with anyio.CancelScope(shield=True):
                    await conn.release()
            store = await Store.open(url, min_size=1, max_size=1)
            try:
                leader = await store.leadership.get_leader()
            finally:
                await store.close()
            held_by = None if leader is None else str(leader["instance_id"])
            log.info("maintenance tick skipped: leadership is held by %s", held_by)
            return TickReport(instance_id, False, held_by, [])
        try:
            return await _run_due(url, instance_id, branches, config, clock, metrics, force, term)
        finally:
            with anyio.CancelScope(shield=True):
                await conn.release()
    finally:
        with anyio.CancelScope(shield=True):
            await conn.close()


async def _acquire_within(conn: LeaderConnection, wait: float, clock: Clock) -> bool:
    deadline = clock.monotonic() + max(0.0, wait)
    while True:
        if await conn.try_acquire():
            return True
        if clock.monotonic() >= deadline:
            return False
        await clock.sleep(_ACQUIRE_POLL)


async def _run_due(
    url: str,
    instance_id: str,
    branches: Sequence[Branch],
    config: MaintenanceConfig,
    clock: Clock,
    metrics: Instruments,
    force: bool,
    term: int,
) -> TickReport:
    store = await Store.open(url, min_size=1, max_size=1, term=term)
    try:
        await store.leadership.record_leader(instance_id, "tick", "bounded tick()", clock.db_now())
        persisted = {row["branch"]: row for row in await store.maintenance.read_health()}
        stats = [BranchStats.for_branch(b) for b in branches]
        lane = Lane("tick", stats, 1, BranchContext(store, clock, config, metrics), metrics)
        now = clock.now()
        reports: list[BranchReport] = []
        health: list[HealthRow] = []
        for s in stats:
            branch = s.branch
            before = persisted.get(branch.name)
            started = None if before is None else before["last_started_at"]
            due = force or started is None or started + timedelta(seconds=branch.interval) <= now
            if not due:
                reports.append(BranchReport(branch.name, branch.lane, ran=False))
                continue
            result = await lane.drive(branch.name)
            reports.append(
                BranchReport(
                    branch.name,
                    branch.lane,
                    ran=True,
                    rows=dict(result.rows) if result is not None else {},
                    duration_s=s.last_duration,
                    error=None if result is not None else s.last_error,
                )
            )
            health.append(_accumulate(s.health(branch.lane), before))
        try:
            await store.maintenance.write_health(health, instance_id, clock.db_now())
        except DatabaseUnavailable as exc:
            log.warning("writing maintenance health after tick failed: %s", exc)
        return TickReport(instance_id, True, instance_id, reports)
    finally:
        with anyio.CancelScope(shield=True):
            await store.close()


def _accumulate(row: HealthRow, before: dict[str, Any] | None) -> HealthRow:
    """Add this tick's counters to the persisted ones, so ticks add up like a leader's."""
    if before is None:
        return row
    return replace(
        row,
        runs=row.runs + int(before["runs"]),
        errors=row.errors + int(before["errors"]),
        overruns=row.overruns + int(before["overruns"]),
        rows_touched=row.rows_touched + int(before["rows_touched"]),
    )
