"""Keeping a runtime's presence: the lock, the liveness beat, and self-fencing (ADR 014).

The leader rescues a running job as orphaned only on two pieces of evidence together: its
runtime's presence lock is gone, *and* the runtime has not beaten its liveness row for
``MaintenanceConfig.holder_silence``. This module keeps both for one runtime:

- **The lock**, on a dedicated connection that the server ends once idle past
  ``PRESENCE_IDLE_LIMIT``, checked actively every ``presence_check_interval`` (a half-open
  connection never reports its death). When a check fails, claims pause (``ClaimGate``)
  and the lock is taken again on a new connection (retried until our own old session is
  gone); then claims resume and every dispatcher is woken.
- **The beat**: every ``presence_beat_interval`` while the runtime holds jobs (else every
  ``liveness_interval``), through the runtime's pool, not the presence connection, so the
  two pieces of evidence fail independently.
- **Self-fencing**: when no beat has landed for half the holder silence and the lock has
  not been proven meanwhile either, the leader may be about to rescue our jobs: their
  handlers are stopped here so an attempt never runs on in parallel with its rescue, and
  each attempt is handed back (requeued, guarded by its lease: stale if the rescue came
  first, else the job runs again as soon as the partition heals).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskStatus

from awa.clock import Clock
from awa.errors import DatabaseUnavailable, RuntimeStateError
from awa.store import Store
from awa.store.presence import Presence
from awa.telemetry import Instruments
from awa.worker.claim_gate import ClaimGate
from awa.worker.inflight import InFlight, StopReason
from awa.worker.loop_errors import LoopErrors

__all__ = ["PresenceKeeper"]

log = logging.getLogger("awa.runtime")

#: How often self-fencing looks at the evidence (no I/O).
_FENCE_CHECK = 0.1


class PresenceKeeper:
    def __init__(
        self,
        store: Store,
        instance_id: str,
        inflight: InFlight,
        gate: ClaimGate,
        wake_all: Callable[[], None],
        clock: Clock,
        metrics: Instruments,
        *,
        check_interval: float,
        beat_interval: float,
        liveness_interval: float,
        holder_silence: float,
        register: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self.instance_id = instance_id
        self._inflight = inflight
        self._gate = gate
        self._wake_all = wake_all
        self._clock = clock
        self._metrics = metrics
        self._check_interval = max(0.05, check_interval)
        self._beat_interval = max(0.05, beat_interval)
        self._liveness_interval = liveness_interval
        self._fence_after = holder_silence / 2
        # A healthy presence is proven every check interval; 0.6 x the silence (> one
        # interval at the defaults) without proof means it is not (or not provably) held.
        self._presence_doubt = max(holder_silence * 0.6, self._check_interval * 1.2)
        self._register = register
        self._presence: Presence | None = None
        self._last_beat = clock.monotonic()
        self._last_presence = clock.monotonic()
        self.losses = 0  #: presence lost and re-acquired
        self.fenced = 0  #: handlers stopped by self-fencing

    async def acquire(self) -> None:
        """Take the lock at start; ``RuntimeStateError`` if a live runtime holds this id."""
        self._presence = await Presence.acquire(self._store.url, self.instance_id)
        self._last_beat = self._last_presence = self._clock.monotonic()

    async def close(self) -> None:
        if self._presence is not None:
            await self._presence.close()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        # Evidence ages start with the loops that refresh them (acquire() may be seconds
        # ago: registration, recovery and the leader's start came in between).
        self._last_beat = self._last_presence = self._clock.monotonic()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch)
            tg.start_soon(self._beat)
            tg.start_soon(self._fence)
            task_status.started()

    # -------------------------------------------------------------------- the lock

    async def _watch(self) -> None:
        errors = LoopErrors("presence", self._clock, self._metrics)
        while True:
            presence = self._presence
            assert presence is not None, "acquire() first"
            with anyio.move_on_after(self._check_interval):
                await presence.terminated.wait()
            try:
                await presence.ping("presence check", self._check_interval)
                self._last_presence = self._clock.monotonic()
                continue
            except DatabaseUnavailable as exc:
                errors.record(exc, f"presence of runtime {self.instance_id}")
                reason = str(exc)
            self.losses += 1
            self._gate.close(f"presence lost: {reason}")
            log.warning(
                "runtime %s lost its presence lock (%s): claims paused until it is back",
                self.instance_id,
                reason,
            )
            presence.terminate()
            self._presence = await self._reacquire(errors)
            self._gate.open()
            self._wake_all()
            log.warning("runtime %s has its presence lock again; claims resume", self.instance_id)

    async def _reacquire(self, errors: LoopErrors) -> Presence:
        while True:
            try:
                presence = await Presence.acquire(self._store.url, self.instance_id)
            except RuntimeStateError as exc:
                # Expected: our previous session still holds the lock until the server
                # ends it (idle limit). A warning, not an error; keep trying.
                await errors.failed(DatabaseUnavailable(str(exc)), "re-acquiring presence")
                continue
            except Exception as exc:  # every class (ADR 014): log, count, try again
                await errors.failed(exc, "re-acquiring the presence lock")
                continue
            errors.succeeded()
            self._last_presence = self._clock.monotonic()
            return presence

    # -------------------------------------------------------------------- the beat

    async def _beat(self) -> None:
        errors = LoopErrors("liveness", self._clock, self._metrics)
        last_touch = self._clock.monotonic()
        was_busy = False
        while True:
            await self._clock.sleep(self._beat_interval)
            now = self._clock.monotonic()
            busy = len(self._inflight) > 0
            if busy and not was_busy:
                # Silence only counts while beating is required: an idle runtime beats
                # every liveness interval, and its first job must not look fenced at once.
                self._last_beat = max(self._last_beat, now - self._beat_interval)
            was_busy = busy
            if busy or now - last_touch >= self._liveness_interval:
                sent = self._clock.monotonic()  # last_seen_at records the send time
                try:
                    # Bounded: on a partitioned pool the statement would hang, and the beat
                    # must fail visibly for self-fencing to see it.
                    with anyio.fail_after(max(1.0, 2 * self._beat_interval)):
                        found = await self._store.runtimes.touch_runtime(
                            self.instance_id, self._clock.db_now()
                        )
                        if not found and self._register is not None:
                            # Our row was garbage-collected while we were unseen: without
                            # it we would look silent however often we beat.
                            log.warning(
                                "runtime %s re-registers its liveness row", self.instance_id
                            )
                            await self._register()
                except TimeoutError:
                    errors.record(
                        DatabaseUnavailable("no answer within the beat's bound"),
                        f"liveness beat of runtime {self.instance_id}",
                    )
                except Exception as exc:  # every class: log, count, beat again
                    errors.record(exc, f"liveness beat of runtime {self.instance_id}")
                else:
                    errors.succeeded()
                    last_touch = self._last_beat = sent

    async def _fence(self) -> None:
        """Its own loop: the beat and the presence check may both hang on a partition."""
        last = self._clock.monotonic()
        while True:
            await self._clock.sleep(_FENCE_CHECK)
            now = self._clock.monotonic()
            stalled, last = now - last - _FENCE_CHECK, now
            if stalled > _FENCE_CHECK:
                # Our own event loop did not run (a handler blocked it), so neither could
                # the beat nor the check: that says nothing about the database. Credit the
                # stall and judge on fresh evidence.
                self._last_beat = min(now, self._last_beat + stalled)
                self._last_presence = min(now, self._last_presence + stalled)
                continue
            self._fence_if_orphaned()

    def _fence_if_orphaned(self) -> None:
        """Stop our handlers when the leader may be about to rescue their jobs: no beat for
        half the holder silence and no proof of the presence lock either (ADR 014)."""
        now = self._clock.monotonic()
        silent = now - self._last_beat
        if silent < self._fence_after or now - self._last_presence < self._presence_doubt:
            return
        running = [e for e in self._inflight.snapshot() if not e.result_buffered]
        running = [e for e in running if e.stop_reason is None]
        if not running:
            return
        self.fenced += len(running)
        log.error(
            "runtime %s has neither its presence lock nor a liveness beat for %.1fs: "
            "stopping %d handlers, their jobs will be rescued elsewhere",
            self.instance_id,
            silent,
            len(running),
        )
        for entry in running:
            entry.stop(StopReason.FENCED)
