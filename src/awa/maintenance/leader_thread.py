"""Run the maintenance leader in a thread of its own, with its own event loop (ADR 013).

Handlers run on the runtime's event loop, and a handler that blocks that loop (a sync HTTP
call, CPU-bound work, ``time.sleep``) used to freeze the leader with it: promotion, rescue
and cron stopped for the whole cluster while the leader kept its lock, and the leader's own
watchdog could not even notice. ``LeaderThread`` moves the whole ``MaintenanceLeader``
(election, watchdog, due-time listener, health writer, both lanes, and the release of the
lock and pools when it steps down) onto a dedicated thread running its own asyncio loop, so
only the GIL is still shared with handlers.

Ownership stays structured: the runtime starts ``LeaderThread.run`` in its services task
group like any other service. ``run`` starts the thread, reports started once the leader
campaigns, and waits. On cancellation it cancels the leader inside its own loop (a cancel
scope cancelled through ``loop.call_soon_threadsafe``), so the leader's ``finally`` blocks
(lock release, pool closes, each bounded) run where they belong, then waits for the thread
without blocking the owner's loop, up to ``STOP_TIMEOUT``. An exception that ends the
thread is re-raised by ``run`` in the owner's task group, exactly as if the leader had run
there.

Reading ``is_leader``, ``terms``, ``term``, ``mode``, ``mode_reason``, ``lanes`` and
``stats`` from the owner's thread is fine: they are plain attributes the leader rebinds.
``wait_until_leader()`` and ``resign()`` would touch anyio objects of the leader's loop, so
this class provides thread-safe versions with the same names.

``isolated()`` decides: only a leader on the ``SystemClock`` moves to a thread. A
``FakeClock`` wakes sleepers through anyio events of the loop that advances it, so a leader
on a fake (or any other) clock stays in the owner's loop, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from anyio.abc import TaskStatus

from awa.clock import SystemClock
from awa.errors import RuntimeStateError
from awa.maintenance.lane import BranchStats, Lane
from awa.maintenance.leader import MaintenanceLeader
from awa.maintenance.precise_loop import precise_loop_factory
from awa.store import Store

__all__ = ["STOP_TIMEOUT", "LeaderThread", "isolated"]

log = logging.getLogger("awa.maintenance")

#: How long stopping waits for the thread. The leader's own step-down is bounded (lock
#: release and pool closes run side by side, 2 s each, then the election connection's close,
#: 2 s), so this is only reached by a bug; the thread is then abandoned (it is a daemon
#: thread: it cannot keep the process alive) and an error is logged.
STOP_TIMEOUT = 10.0

_T = TypeVar("_T")


def isolated(leader: MaintenanceLeader, *, isolate: bool) -> MaintenanceLeader | LeaderThread:
    """``leader`` wrapped to run in its own thread when ``isolate`` is set and its clock is
    the real one; else ``leader`` itself, to run in the caller's loop (see the module
    docstring for why other clocks stay)."""
    if isolate and type(leader.clock) is SystemClock:
        return LeaderThread(leader)
    return leader


class LeaderThread:
    """A ``MaintenanceLeader`` that campaigns and leads on its own thread and event loop."""

    def __init__(self, leader: MaintenanceLeader) -> None:
        self.inner = leader
        self._lock = threading.Lock()
        # Set while the thread's loop runs the leader; guarded by ``_lock``.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scope: anyio.CancelScope | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        # Events of the owner's loop, set from the thread with call_soon_threadsafe.
        self._running: anyio.Event | None = None
        self._ended: anyio.Event | None = None

    # ------------------------------------------------------------- the leader's state

    @property
    def instance_id(self) -> str:
        return self.inner.instance_id

    @property
    def is_leader(self) -> bool:
        return self.inner.is_leader

    @property
    def terms(self) -> int:
        return self.inner.terms

    @property
    def term(self) -> int | None:
        return self.inner.term

    @property
    def mode(self) -> str | None:
        return self.inner.mode

    @property
    def mode_reason(self) -> str | None:
        return self.inner.mode_reason

    @property
    def lanes(self) -> dict[str, Lane]:
        return self.inner.lanes

    @property
    def stats(self) -> dict[str, BranchStats]:
        return self.inner.stats

    @property
    def thread(self) -> threading.Thread | None:
        """The maintenance thread (None before ``run``)."""
        return self._thread

    # ------------------------------------------------------- thread-safe operations

    async def wait_until_leader(self) -> None:
        """Return once this process leads (call from the owner's loop).

        Raises ``RuntimeStateError`` if the maintenance thread ends first."""
        await self._in_leader_loop(self.inner.wait_until_leader)

    def resign(self) -> None:
        """Give up leadership now (thread-safe; the leader campaigns again later)."""
        with self._lock:
            loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self.inner.resign)
                return
            except RuntimeError:  # the loop closed meanwhile: nothing left to resign
                return
        # Not running (yet): the flag is a plain, unwaited event until the thread starts.
        self.inner.resign()

    async def write_health(self, store: Store) -> None:
        """Persist branch health now, through ``store`` of the *caller's* loop (tests and
        tools; the leader's own health writer runs in the maintenance loop)."""
        await self.inner.write_health(store)

    async def _in_leader_loop(self, fn: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
        """Await ``fn()`` on the leader's loop from the owner's. The task it becomes there
        is owned by this call: cancelling the caller cancels it, and it is cancelled when
        the maintenance loop ends (reported as ``RuntimeStateError``)."""
        if self._running is None or self._ended is None:
            raise RuntimeStateError("the maintenance leader thread was never started")
        await self._running.wait()
        with self._lock:
            loop = self._loop
        if loop is None or self._ended.is_set():
            raise RuntimeStateError("the maintenance leader thread has stopped")
        future = asyncio.run_coroutine_threadsafe(fn(), loop)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and task is not None and task.cancelling() == 0:
                # Not our caller's cancellation: the maintenance loop ended under it.
                raise RuntimeStateError("the maintenance leader thread has stopped") from None
            raise

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the leader on its thread until cancelled; re-raise what ends it otherwise."""
        if self._thread is not None:
            raise RuntimeStateError("a LeaderThread runs once")
        owner = asyncio.get_running_loop()
        self._running, self._ended = running, ended = anyio.Event(), anyio.Event()
        thread = threading.Thread(
            target=self._main,
            args=(partial(_tell, owner, running), partial(_tell, owner, ended)),
            name=f"awa-maintenance {self.inner.instance_id}",
            daemon=True,
        )
        self._thread = thread
        thread.start()
        try:
            await running.wait()
            if not ended.is_set():
                task_status.started()
                await ended.wait()
        finally:
            with anyio.CancelScope(shield=True):
                await self._stop(thread, ended)
            # Raised even while cancelled: a leader that crashed must not vanish silently.
            if self._failure is not None:
                raise self._failure

    def _request_stop(self) -> None:
        with self._lock:
            self._stopping = True
            loop, scope = self._loop, self._scope
        if loop is not None and scope is not None:
            # RuntimeError: closed meanwhile, the thread is ending by itself.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(scope.cancel)

    async def _stop(self, thread: threading.Thread, ended: anyio.Event) -> None:
        self._request_stop()
        with anyio.move_on_after(STOP_TIMEOUT):
            await ended.wait()
        if not ended.is_set():
            log.error(
                "maintenance thread of %s did not stop within %gs; abandoning it",
                self.inner.instance_id,
                STOP_TIMEOUT,
            )
            return
        # The thread signalled from its last statement: this join returns at once.
        await anyio.to_thread.run_sync(thread.join, STOP_TIMEOUT)

    # ------------------------------------------------------------ in the thread

    def _main(self, running: Callable[[], None], ended: Callable[[], None]) -> None:
        try:
            # Timers with microsecond resolution: the promotion branch sleeps until a job
            # is due, and epoll's millisecond rounding made that sleep late (ADR 044).
            with asyncio.Runner(loop_factory=precise_loop_factory()) as runner:
                runner.run(self._serve(running))
        except BaseException as exc:  # handed to the owner, which re-raises it
            self._failure = exc
        finally:
            running()  # a thread that failed before it ran must still wake its owner
            ended()

    async def _serve(self, running: Callable[[], None]) -> None:
        with anyio.CancelScope() as scope:
            with self._lock:
                if self._stopping:
                    return
                self._loop, self._scope = asyncio.get_running_loop(), scope
            try:
                async with anyio.create_task_group() as tg:
                    await tg.start(self.inner.run)
                    running()
            finally:
                with self._lock:
                    self._loop, self._scope = None, None


def _tell(loop: asyncio.AbstractEventLoop, event: anyio.Event) -> None:
    """Set ``event`` (of ``loop``) from another thread."""
    # RuntimeError: the owner's loop is closed, nobody is waiting any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(event.set)
