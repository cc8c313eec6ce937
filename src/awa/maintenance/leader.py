"""The maintenance leader: election, watchdog, term, and running the lanes while it leads.

How the lanes are arranged (modes, the auto split) and which branches a due-time
announcement wakes are the supervisor's (``awa.maintenance.supervisor``).

State machine (ADR 003, ADR 012): *follower* --lock won, term begun--> *leader*
--(connection lost | health check failed | deposed | resign | shutdown)--> *follower*. As
follower, the process *waits* for the lock (``pg_advisory_lock``, each wait bounded by
``ELECTION_WAIT``) on a dedicated connection: granted the moment the leader's session ends,
one transaction per wait (ADR 036); after leading, it steps back ``election_interval``
(±20 % jitter) before waiting again, so a resigning leader hands over. Having won the lock,
it starts a new leadership *term* in the database (which waits for any transaction of an
older term still in flight) and opens its stores fenced by that term, so every maintenance
write commits only while the term is current. As leader, one task group holds the watchdog,
the due-time listener, the health writer and the lanes; any exit from leadership cancels
that whole group. A write refused by the fence (``LeadershipLost``: a newer leader took
over, e.g. after this process's connections were partitioned away) ends the leadership
like a failed health check, and the leader connection is dropped so the next campaign
starts from a fresh session.

Stepping down is bounded: the lock release and the closing of both pools run side by side,
each giving up (and dropping its connections) after ``awa.store.dedicated.CLOSE_TIMEOUT``
(2 s), so even a process whose every connection is blackholed stops within seconds. Branch
transactions in flight are fenced; the next term cannot begin until they end. Leading, the
due-time LISTEN (bounded) comes before the watchdog, then the connection's only user.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

import anyio
from anyio.abc import TaskStatus

from awa.backoff import Backoff
from awa.clock import Clock
from awa.config import MaintenanceConfig
from awa.errors import DatabaseBusy, DatabaseUnavailable, LeadershipLost
from awa.maintenance.branch import SLO, Branch, BranchContext
from awa.maintenance.lane import BranchStats, Lane, health_cadence, take_health_rows
from awa.maintenance.overrun import Observation
from awa.maintenance.supervisor import (
    SPLIT,
    auto_split_reason,
    build_lanes,
    initial_mode,
    route_due,
)
from awa.store import Store
from awa.store.leadership import LeaderConnection
from awa.telemetry import Instruments

__all__ = ["DUE_CHANNEL", "MaintenanceLeader"]

log = logging.getLogger("awa.maintenance")

DUE_CHANNEL = "awa_due"
#: Between failed connection attempts of the election. Capped low: after a database outage,
#: the cap is roughly how long the SLO lane stays without a leader once PostgreSQL is back,
#: and one connection attempt every few seconds per worker costs the server nothing.
_RECONNECT = Backoff(base=0.5, factor=2.0, cap=5.0, jitter=0.2)
#: How long a new leader waits for the transactions of older terms still in flight before it
#: gives the lock back and campaigns again. Longer than the fence's idle bound (5 s), so a
#: vanished predecessor's open transactions are ended by the server before this runs out.
TERM_WAIT = 10.0
#: How long one election wait lasts before the follower asks again (ADR 036): the idle cost
#: of a follower is one transaction per this many seconds. Failover does not depend on it
#: (a waiting follower is granted the lock at once); it bounds how long a follower takes to
#: notice a connection that went half-open while it waited, where TCP keepalive has not.
ELECTION_WAIT = 30.0


class MaintenanceLeader:
    """Campaign for leadership forever (``run``); lead with lanes while elected."""

    def __init__(
        self,
        url: str,
        instance_id: str,
        branches: Sequence[Branch],
        config: MaintenanceConfig,
        clock: Clock,
        metrics: Instruments,
    ) -> None:
        names = [b.name for b in branches]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate maintenance branch names: {names}")
        self.url = url
        self.instance_id = instance_id
        self.branches = list(branches)
        self.config = config
        self.clock = clock
        self.metrics = metrics
        self.is_leader = False
        self.mode: str | None = None
        self.mode_reason: str | None = None
        self.lanes: dict[str, Lane] = {}
        self.stats: dict[str, BranchStats] = {}
        #: Leaderships this process won (since it started).
        self.terms = 0
        #: The database's leadership term this process leads in now (None: it does not).
        self.term: int | None = None
        self._resign = anyio.Event()
        self._switch = anyio.Event()
        self._became_leader = anyio.Event()
        #: Seconds one election wait lasts (``ELECTION_WAIT``; tests shorten it).
        self.election_wait = ELECTION_WAIT
        #: Database clock minus this process's clock, in seconds (learned while leading):
        #: due times on ``awa_due`` are database-clock epochs.
        self.db_offset = 0.0

    # ------------------------------------------------------------ election

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        self.metrics.leader.add(0)  # followers export 0 rather than nothing
        failures = 0
        while True:
            try:
                conn = await LeaderConnection.open(
                    self.url, idle_limit=self.session_idle_limit, wait=self.election_wait
                )
            except DatabaseUnavailable as exc:
                failures += 1
                delay = _RECONNECT.delay(min(failures, 20))
                log.warning("maintenance election: cannot connect (%s); retry in %.1fs", exc, delay)
                await self.clock.sleep(delay)
                continue
            failures = 0
            try:
                await self._campaign(conn)
            except DatabaseUnavailable as exc:
                log.warning("maintenance election connection lost: %s", exc)
                if isinstance(exc, DatabaseBusy):  # refused (read-only: a standby): no spin
                    await self.clock.sleep(self.config.election_interval)
            except Exception:
                # A bug must not take the worker down with it: log it, campaign again.
                failures += 1
                log.exception("maintenance leader failed unexpectedly; campaigning again")
                await self.clock.sleep(_RECONNECT.delay(min(failures, 20)))
            finally:
                with anyio.CancelScope(shield=True):
                    await conn.close()

    async def _campaign(self, conn: LeaderConnection) -> None:
        """Wait for the lock, lead, step back; again while the connection lives. A wait
        that runs out is simply renewed (no pause: nobody else was waiting on us)."""
        while conn.alive:
            if not await conn.wait_acquire(self.election_wait, self.config.leader_check_timeout):
                continue
            await self._lead(conn)
            if not conn.alive:
                return
            jitter = random.uniform(0.8, 1.2)
            await self.clock.sleep(self.config.election_interval * jitter)

    @property
    def session_idle_limit(self) -> float:
        """How long the server lets the leader connection sit idle before it ends the
        session (and frees the lock): half as long again as the longest gap this process
        leaves between two uses of it (an election attempt, with jitter, or a watchdog
        check), plus the check's timeout. A process that vanished is replaced that much
        later, plus a follower's election interval; one that merely stalls for longer than
        the slack loses the lock and campaigns again."""
        gap = max(self.config.leader_check_interval, 1.2 * self.config.election_interval)
        return 1.5 * gap + self.config.leader_check_timeout

    async def wait_until_leader(self) -> None:
        await self._became_leader.wait()

    def resign(self) -> None:
        """Give up leadership now (the lock is released; we campaign again later)."""
        self._resign.set()

    # ---------------------------------------------------------- leadership

    async def _lead(self, conn: LeaderConnection) -> None:
        term = await conn.begin_term(self.instance_id, TERM_WAIT, self.clock.db_now())
        if term is None:
            log.warning(
                "maintenance leader %s: transactions of the previous term still run after "
                "%gs; giving the lock back",
                self.instance_id,
                TERM_WAIT,
            )
            await conn.release()
            return
        await self._learn_clock(conn)
        self.terms += 1
        self._resign = anyio.Event()
        mode, reason = initial_mode(self.config)
        # A connection per reserved slot on top of each lane's shared capacity (ADR 030).
        reserved_slo = sum(b.reserved_slot for b in self.branches if b.lane == SLO)
        reserved_hygiene = sum(b.reserved_slot for b in self.branches if b.lane != SLO)
        slo_store = await self._open_store(self.config.slo_capacity + reserved_slo, term)
        try:
            hygiene_store = await self._open_store(
                self.config.hygiene_capacity + reserved_hygiene, term
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await slo_store.close()
            raise
        self.stats = {b.name: BranchStats.for_branch(b) for b in self.branches}
        self.mode, self.mode_reason = mode, reason
        self.term = term
        self.is_leader = True
        self.metrics.declare_leadership()
        self.metrics.elections.add(1)
        self.metrics.leader.add(1)
        log.info(
            "maintenance leadership won by %s (term %d, mode %s)",
            self.instance_id,
            term,
            mode,
            extra={"event": "leadership_gained", "instance": self.instance_id, "term": term},
        )
        deposed = False
        try:
            await self._lead_term(conn, mode, reason, slo_store, hygiene_store)
        except* LeadershipLost as lost:
            deposed = True
            log.warning(
                "maintenance leader %s deposed: %s; stopping lanes",
                self.instance_id,
                lost.exceptions[0],
                extra={"event": "leadership_deposed", "instance": self.instance_id, "term": term},
            )
        except* DatabaseUnavailable as lost:
            log.warning(
                "maintenance leader %s lost the database: %s",
                self.instance_id,
                lost.exceptions[0],
                extra={"event": "leadership_lost", "instance": self.instance_id, "term": term},
            )
        finally:
            self.is_leader = False
            self.term = None
            self.lanes = {}
            self._became_leader = anyio.Event()
            self.metrics.leader.add(-1)
            self.metrics.clear_leader_gauges()
            with anyio.CancelScope(shield=True):
                async with anyio.create_task_group() as tg:
                    # Deposed: this session may be a stale one; start the next campaign on
                    # a fresh connection.
                    tg.start_soon(conn.close if deposed else conn.release)
                    tg.start_soon(slo_store.close)
                    tg.start_soon(hygiene_store.close)
            log.info(
                "maintenance leadership of %s ended",
                self.instance_id,
                extra={"event": "leadership_ended", "instance": self.instance_id, "term": term},
            )

    async def _open_store(self, size: int, term: int) -> Store:
        """A lane's pool, every transaction of which is fenced by ``term``."""
        return await Store.open(self.url, min_size=1, max_size=size, term=term)

    async def _lead_term(
        self,
        conn: LeaderConnection,
        mode: str,
        reason: str | None,
        slo_store: Store,
        hygiene_store: Store,
    ) -> None:
        """Lead until the watchdog, a resignation or a fenced write ends it."""
        await conn.listen(DUE_CHANNEL, self._on_due, self.config.leader_check_timeout)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watchdog, conn, tg.cancel_scope)
            await slo_store.leadership.record_leader(
                self.instance_id, mode, reason, self.clock.db_now()
            )
            tg.start_soon(self._health_writer, hygiene_store)
            self._became_leader.set()
            while True:
                self._switch = anyio.Event()
                await self._run_lanes(mode, reason, slo_store, hygiene_store)
                mode = SPLIT
                reason = self.mode_reason
                try:
                    await slo_store.leadership.record_leader(
                        self.instance_id, mode, reason, self.clock.db_now()
                    )
                except DatabaseUnavailable as exc:
                    log.warning("recording the lane-mode switch failed: %s", exc)

    async def _run_lanes(
        self,
        mode: str,
        reason: str | None,
        slo_store: Store,
        hygiene_store: Store,
    ) -> None:
        """Run lanes in ``mode`` until an auto switch to split is requested."""
        self.mode, self.mode_reason = mode, reason
        self.lanes = build_lanes(
            mode,
            self.stats,
            self.config,
            self._ctx(slo_store),
            self._ctx(hygiene_store),
            self.metrics,
            self._auto_observe,
        )
        async with anyio.create_task_group() as lanes:
            for lane in self.lanes.values():
                await lanes.start(lane.run)
            await self._switch.wait()
            lanes.cancel_scope.cancel()
        log.warning(
            "maintenance lanes switching to split: %s",
            self.mode_reason,
            extra={"event": "lane_switch", "mode": SPLIT, "reason": self.mode_reason},
        )

    def _ctx(self, store: Store) -> BranchContext:
        return BranchContext(
            store=store, clock=self.clock, config=self.config, metrics=self.metrics
        )

    def _auto_observe(self, lane: str, stats: BranchStats, obs: Observation) -> None:
        """``auto`` mode: the first overrun episode of an SLO branch splits the lanes."""
        reason = auto_split_reason(self.config, stats, obs)
        if reason is not None:
            self.mode_reason = reason
            self._switch.set()

    def _on_due(self, payload: str) -> None:
        """A due time or a cron redeclaration was announced: the supervisor routes it to
        the branches listening to its topic (the leader names none)."""
        route_due(payload, self.lanes, self.clock.now().timestamp(), self.db_offset)

    async def _watchdog(self, conn: LeaderConnection, scope: anyio.CancelScope) -> None:
        interval = self.config.leader_check_interval
        while True:
            with anyio.move_on_after(interval):
                await conn.terminated.wait()
            healthy = False
            if conn.alive and not self._resign.is_set():
                try:
                    before = self.clock.now().timestamp()
                    healthy, db_epoch = await conn.check(self.config.leader_check_timeout)
                    after = self.clock.now().timestamp()
                except DatabaseUnavailable as exc:
                    log.warning("maintenance leader health check failed: %s", exc)
                if healthy:
                    self._set_db_offset(db_epoch, before, after)
            if self._resign.is_set():
                log.info("maintenance leader %s resigning", self.instance_id)
            elif not healthy:
                log.warning(
                    "maintenance leader %s lost leadership; stopping lanes", self.instance_id
                )
            if not healthy or self._resign.is_set():
                scope.cancel()
                return

    async def _learn_clock(self, conn: LeaderConnection) -> None:
        """Learn ``db_offset`` from one round trip on the leader connection (its midpoint).
        Under pinned time (``db_now()`` set) both clocks are the same one."""
        if self.clock.db_now() is not None:
            self.db_offset = 0.0
            return
        try:
            before = self.clock.now().timestamp()
            db = await conn.db_epoch(self.config.leader_check_timeout)
            after = self.clock.now().timestamp()
        except DatabaseUnavailable as exc:
            log.warning("maintenance leader could not read the database clock: %s", exc)
            return
        self._set_db_offset(db, before, after)

    def _set_db_offset(self, db_epoch: float, before: float, after: float) -> None:
        """The database clock minus the app clock, read at the midpoint of a round trip that
        started at ``before`` and ended at ``after`` (app clock). Pinned time: 0."""
        pinned = self.clock.db_now() is not None
        self.db_offset = 0.0 if pinned else db_epoch - (before + after) / 2

    async def _health_writer(self, store: Store) -> None:
        interval = self.config.health_interval
        while True:
            await self.clock.sleep(interval)
            interval = health_cadence(self.config, self.stats.values())
            await self.write_health(store, interval)

    async def write_health(self, store: Store, interval: float | None = None) -> None:
        """Persist every branch's health, with the interval until the next write (the
        writer's stretched one, ADR 041; ``health_interval`` by default)."""
        rows = take_health_rows(self.lanes, self.stats)
        until_next, now = interval or self.config.health_interval, self.clock.db_now()
        try:
            await store.maintenance.write_health(rows, self.instance_id, now, interval=until_next)
        except DatabaseUnavailable as exc:
            log.warning("writing maintenance health failed: %s", exc)
            for row in rows:  # the next write covers these windows too
                self.stats[row.branch].reopen_window(row)
