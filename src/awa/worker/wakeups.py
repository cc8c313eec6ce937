"""Waking idle dispatchers: LISTEN/NOTIFY when it works, polling when it does not.

Inserts ``NOTIFY awa_jobs, '<queue>'`` in their own transaction (delivered at commit;
identical payloads in one transaction coalesce). One dedicated connection per process
listens and sets the queue's event.

The connection is otherwise idle and a half-open one never reports its death, so it is
probed every ``PROBE_INTERVAL`` with a transaction-free round trip (``awa.db.probe``; the
server also ends it once idle past ``IDLE_LIMIT``). A probe unanswered for ``DOUBT_AFTER``
puts the listener *in doubt*: every dispatcher is woken (a notification may be lost) and
polls at the fast fallback rate, so a job inserted at the moment of a fault waits at most
about ``PROBE_INTERVAL + DOUBT_AFTER`` plus one fallback poll. The answer arriving late
clears the doubt (a busy machine, not a dead peer); no answer within ``CHECK_TIMEOUT``, or
the driver reporting the connection dead, means it is lost: it is dropped and reconnected
with backoff, and when it is back every queue is woken once more. ADR 015.
"""

from __future__ import annotations

import logging

import anyio
from anyio.abc import TaskStatus

from awa.backoff import Backoff
from awa.clock import Clock
from awa.errors import DatabaseUnavailable
from awa.store import Listener, open_listener

__all__ = ["CHANNEL", "Wakeups"]

log = logging.getLogger("awa.worker.wakeups")

CHANNEL = "awa_jobs"
#: How often the LISTEN connection is probed.
PROBE_INTERVAL = 0.1
#: A probe unanswered this long puts the listener in doubt: dispatchers poll meanwhile.
#: ``PROBE_INTERVAL + DOUBT_AFTER`` stays within the default fallback poll (0.25 s).
DOUBT_AFTER = 0.15
#: A probe unanswered this long means the connection is lost.
CHECK_TIMEOUT = 1.0
#: The server ends a LISTEN session idle longer than this.
IDLE_LIMIT = 10.0
_RECONNECT = Backoff(base=0.2, factor=2.0, cap=10.0, jitter=0.2)


class Wakeups:
    def __init__(self, queues: list[str], clock: Clock) -> None:
        self._events = {q: anyio.Event() for q in queues}
        self._clock = clock
        self._listener: Listener | None = None
        self._in_doubt = False
        self.losses = 0  #: LISTEN connections found dead
        self.doubts = 0  #: probes that went unanswered for DOUBT_AFTER

    @property
    def listening(self) -> bool:
        """Whether notifications can be trusted to wake the dispatchers: a live listener
        whose last probe was answered in time."""
        listener = self._listener
        return listener is not None and listener.alive and not self._in_doubt

    def notify(self, queue: str) -> None:
        event = self._events.get(queue)
        if event is not None:
            event.set()

    def notify_all(self) -> None:
        for event in self._events.values():
            event.set()

    async def _watch(self, listener: Listener) -> None:
        """Return once the listener is dead, or does not answer a probe in time."""
        while True:
            with anyio.move_on_after(PROBE_INTERVAL):
                await listener.terminated.wait()
            try:
                await self._probe(listener)
            except DatabaseUnavailable as exc:
                log.warning("LISTEN connection lost (%s); waking dispatchers, polling", exc)
                listener.terminate()
                return

    async def _probe(self, listener: Listener) -> None:
        """One probe; while it is unanswered past ``DOUBT_AFTER`` the listener is in doubt."""

        async def doubt() -> None:
            await anyio.sleep(DOUBT_AFTER)
            self._in_doubt = True
            self.doubts += 1
            # Dispatchers asleep on the slow poll wake and re-arm at the fallback rate.
            self.notify_all()

        lost: DatabaseUnavailable | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(doubt)
            try:
                await listener.ping("LISTEN connection check", CHECK_TIMEOUT)
            except DatabaseUnavailable as exc:
                lost = exc  # raised outside the task group, which would wrap it in a group
            tg.cancel_scope.cancel()
        if lost is not None:
            raise lost
        if self._in_doubt:
            log.info("LISTEN connection answered late; trusting notifications again")
            self._in_doubt = False

    async def wait(self, queue: str, timeout: float) -> None:
        """Wait for a wake-up or ``timeout``, then re-arm, so a notification arriving while
        the caller claims wakes its next wait at once."""
        with anyio.move_on_after(timeout):
            await self._events[queue].wait()
        self._events[queue] = anyio.Event()

    async def listen(
        self, url: str, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Keep a LISTEN connection open until cancelled; reconnect with backoff."""
        failures = 0
        started = False
        try:
            while True:
                try:
                    self._listener = await open_listener(
                        url, CHANNEL, self.notify, idle_limit=IDLE_LIMIT
                    )
                    failures = 0
                    self.notify_all()
                except Exception as exc:  # every class (ADR 014): poll meanwhile, retry
                    failures += 1
                    log.warning(
                        "LISTEN unavailable (%s: %s); polling meanwhile", type(exc).__name__, exc
                    )
                if not started:
                    task_status.started()
                    started = True
                if self._listener is not None:
                    await self._watch(self._listener)
                    self.losses += 1
                    # Dispatchers asleep on the slow poll wake now and re-arm at the
                    # fallback rate (``listening`` is false until the listener is back).
                    self.notify_all()
                    await self._listener.close()
                    self._listener = None
                    self._in_doubt = False
                await self._clock.sleep(_RECONNECT.delay(max(1, failures)))
        finally:
            if self._listener is not None:
                with anyio.CancelScope(shield=True):
                    await self._listener.close()
