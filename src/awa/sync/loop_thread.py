"""One event loop on one thread, with an owner, a way in, and a way out (ADR 023).

Blocking code (a WSGI view, a script) cannot await, and ``asyncio.run`` per call pays for a
new loop and a new connection every time (tens of milliseconds). A ``LoopThread`` keeps one
loop alive on a daemon thread so pooled connections outlive each call; callers hand it
coroutines with ``asyncio.run_coroutine_threadsafe`` and wait for the result.

Structure, so nothing outlives its owner:

- the thread starts on the first ``submit`` (so a module-level client costs nothing until
  used, and is not started in a pre-fork master that never calls it);
- ``close(grace)`` refuses new calls at once, lets calls in flight finish for ``grace``
  seconds, cancels the rest, then runs the owner's ``shutdown`` coroutine (closing its pool)
  *in the loop*, and joins the thread with a bound; it is idempotent, and a concurrent second
  ``close`` waits for the first;
- an ``atexit`` hook closes a loop its owner forgot, so the interpreter exits without
  hanging (the thread is a daemon: ``atexit`` hooks run only after non-daemon threads end).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, TypeVar

from awa.errors import RuntimeStateError, SyncCallTimeout, SyncClientClosed

__all__ = ["LoopThread"]

log = logging.getLogger("awa.sync")

T = TypeVar("T")

#: How long ``close`` waits for the thread after asking its loop to stop: the shutdown
#: coroutine closes a pool, which ``Database.close`` bounds by its own timeout.
JOIN_TIMEOUT: Final = 10.0
#: How long cancelled calls get to unwind (roll back, give their connection back) before
#: the pool is closed under them.
UNWIND_TIMEOUT: Final = 5.0


class LoopThread:
    """An event loop on a daemon thread named ``name``; ``shutdown`` runs in that loop when
    it stops (after every call in flight has ended)."""

    def __init__(self, name: str, *, shutdown: Callable[[], Awaitable[None]]) -> None:
        self._name = name
        self._shutdown = shutdown
        self._lock = threading.Lock()
        self._closed = False
        self._stopped = threading.Event()
        self._pid = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._pending: set[concurrent.futures.Future[Any]] = set()  # caller side
        self._calls: set[asyncio.Task[Any]] = set()  # the loop's side of the same calls

    @property
    def closed(self) -> bool:
        return self._closed

    def call(self, make: Callable[[], Coroutine[Any, Any, T]], timeout: float | None) -> T:
        """Run ``make()`` in the loop and wait for it in this thread, at most ``timeout``
        seconds. Its exception is re-raised here as it is (same type, same object)."""
        future = self.submit(make)
        try:
            try:
                # result() wakes on cancel(); concurrent.futures.wait() would not (it hears
                # of a cancel only when the task has finished unwinding).
                return future.result(timeout)
            except TimeoutError:
                if future.done():  # finished just now, or the call's own TimeoutError
                    return future.result()
                future.cancel()
                raise SyncCallTimeout(timeout if timeout is not None else 0.0) from None
        except concurrent.futures.CancelledError:
            raise SyncClientClosed(
                "the client was closed while this call was in flight; it was cancelled "
                "and may or may not have taken effect"
            ) from None
        except BaseException:
            # The call's own error (the future is done: cancel() does nothing), or the wait
            # was interrupted (KeyboardInterrupt): then the call must not run on unowned.
            future.cancel()
            raise

    def submit(self, make: Callable[[], Coroutine[Any, Any, T]]) -> concurrent.futures.Future[T]:
        """Start ``make()`` in the loop (starting the loop first if need be). The coroutine
        is created only once it is sure to run, so a refused call leaves no un-awaited
        coroutine behind."""
        with self._lock:
            if self._closed:
                raise SyncClientClosed("the client is closed: create a new one")
            if self._thread is None:
                self._start_locked()
            elif self._pid != os.getpid():
                raise RuntimeStateError(
                    f"this client's event loop was started in process {self._pid}, before a "
                    "fork: its thread and connections do not exist here; create the client "
                    "in each worker process (after the fork), or use it only there"
                )
            assert self._thread is not None and self._loop is not None
            if threading.get_ident() == self._thread.ident:
                raise RuntimeStateError(
                    "a SyncClient was called from its own event loop (a deadlock): await the "
                    "awa.Client in async code instead"
                )
            future = asyncio.run_coroutine_threadsafe(self._tracked(make()), self._loop)
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    async def _tracked(self, call: Coroutine[Any, Any, T]) -> T:
        """Run a call as a task the loop knows is a call: at close, only calls are
        cancelled, never a driver's own helper tasks (asyncpg cancels a running statement
        through one, and cancelling that would leave the statement to run on)."""
        task = asyncio.current_task()
        assert task is not None
        self._calls.add(task)
        try:
            return await call
        finally:
            self._calls.discard(task)

    def _forget(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _start_locked(self) -> None:
        ready: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Event]]
        ready = concurrent.futures.Future()
        thread = threading.Thread(target=self._run, args=(ready,), name=self._name, daemon=True)
        thread.start()
        self._loop, self._stop = ready.result()  # no I/O before this is set: immediate
        self._thread = thread
        self._pid = os.getpid()
        atexit.register(self.close)

    def _run(
        self, ready: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Event]]
    ) -> None:
        try:
            asyncio.run(self._serve(ready))
        except Exception:  # the owner's shutdown failed: nobody is left to raise it to
            log.exception("%s: shutting down its event loop failed", self._name)
        finally:
            self._stopped.set()

    async def _serve(
        self, ready: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Event]]
    ) -> None:
        stop = asyncio.Event()
        ready.set_result((asyncio.get_running_loop(), stop))
        try:
            await stop.wait()
        finally:
            # close() cancelled what outlived its grace; whatever is left (a call whose
            # cancel was still in the post) is cancelled here, before its pool goes away,
            # and given a bounded time to unwind (a driver cancelling a statement).
            calls = list(self._calls)
            for task in calls:
                task.cancel()
            if calls:
                await asyncio.wait(calls, timeout=UNWIND_TIMEOUT)
            await self._shutdown()

    def close(self, grace: float = 5.0) -> None:
        """Refuse new calls, give calls in flight ``grace`` seconds, cancel the rest (their
        callers get ``SyncClientClosed``), run ``shutdown`` in the loop and join the thread.
        Idempotent; safe from any thread but the loop's own."""
        with self._lock:
            first = not self._closed
            self._closed = True
            pending = list(self._pending)
            thread, loop, stop = self._thread, self._loop, self._stop
            forked = thread is not None and self._pid != os.getpid()
        if thread is None or forked:
            self._stopped.set()  # never started here: nothing to stop
            return
        if threading.get_ident() == thread.ident:
            raise RuntimeStateError("a SyncClient cannot be closed from its own event loop")
        if not first:
            self._stopped.wait(JOIN_TIMEOUT)
            return
        atexit.unregister(self.close)
        _, late = concurrent.futures.wait(pending, timeout=max(grace, 0.0))
        for future in late:
            future.cancel()
        assert loop is not None and stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(JOIN_TIMEOUT)
        if thread.is_alive():
            log.warning("%s: its event loop did not stop within %gs", self._name, JOIN_TIMEOUT)
