"""Waking idle dispatchers: LISTEN/NOTIFY when it works, polling when it does not.

Inserts ``NOTIFY awa_jobs, '<queue>'`` in their own transaction (delivered at commit;
identical payloads in one transaction coalesce). One dedicated connection per process
listens and sets the queue's event. The connection is otherwise idle, so it is pinged every
``CHECK_INTERVAL`` (a half-open one never reports its death; the server also ends it once
idle past ``IDLE_LIMIT``). The moment it is found dead, every dispatcher is woken (a
notification may have been lost with it) and they poll at the fast fallback rate until the
listener is back (reconnected with backoff), which wakes every queue once more.
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
#: How often the LISTEN connection is pinged, and the ping's timeout.
CHECK_INTERVAL = 1.0
#: The server ends a LISTEN session idle longer than this.
IDLE_LIMIT = 10.0
_RECONNECT = Backoff(base=0.2, factor=2.0, cap=10.0, jitter=0.2)


class Wakeups:
    def __init__(self, queues: list[str], clock: Clock) -> None:
        self._events = {q: anyio.Event() for q in queues}
        self._clock = clock
        self._listener: Listener | None = None
        self.losses = 0  #: LISTEN connections found dead

    @property
    def listening(self) -> bool:
        return self._listener is not None and self._listener.alive

    def notify(self, queue: str) -> None:
        event = self._events.get(queue)
        if event is not None:
            event.set()

    def notify_all(self) -> None:
        for event in self._events.values():
            event.set()

    async def _watch(self, listener: Listener) -> None:
        """Return once the listener is dead, or no longer answers a ping."""
        while True:
            with anyio.move_on_after(CHECK_INTERVAL):
                await listener.terminated.wait()
            try:
                await listener.ping("LISTEN connection check", CHECK_INTERVAL)
            except DatabaseUnavailable as exc:
                log.warning("LISTEN connection lost (%s); waking dispatchers, polling", exc)
                listener.terminate()
                return

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
                await self._clock.sleep(_RECONNECT.delay(max(1, failures)))
        finally:
            if self._listener is not None:
                with anyio.CancelScope(shield=True):
                    await self._listener.close()
