"""``Runtime``: the composition root that runs dispatchers, heartbeat, completion flushing,
LISTEN wake-ups and the liveness row for one process.

Structure: one host task owns an anyio task group with three tiers: *services* (listener,
completion flusher, heartbeat, liveness), *executions* (handlers) and *dispatch* (claim
loops). Shutdown unwinds them in order: stop claiming, let handlers finish within the grace
period (then stop the rest and requeue them), flush results, cancel services, mark the
liveness row stopped. ``abort()`` cancels everything at once; unfinished jobs stay
``running`` in the database and are recovered by rescue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from types import TracebackType
from typing import Self

import anyio
from anyio.abc import TaskGroup, TaskStatus

from awa.client import Client
from awa.config import MaintenanceConfig, RuntimeConfig
from awa.errors import DatabaseUnavailable, RuntimeStateError
from awa.maintenance import Branch, MaintenanceLeader, default_branches
from awa.maintenance.cleanup import CleanupHook
from awa.store.maintenance import Presence
from awa.worker import CompletionBuffer, Heartbeat, InFlight, QueueDispatcher, StopReason, Wakeups

__all__ = ["Runtime"]

log = logging.getLogger("awa.runtime")


class Runtime:
    """Run the handlers registered on ``client`` for the queues in ``config``, and campaign
    for maintenance leadership (unless ``maintenance=None``).

    ``branches`` adds application maintenance branches to the lanes; ``cleanup_hooks`` run
    after each ``cleanup`` pass.
    """

    def __init__(
        self,
        client: Client,
        config: RuntimeConfig | None = None,
        *,
        role: str = "worker",
        maintenance: MaintenanceConfig | None = None,
        run_maintenance: bool = True,
        branches: list[Branch] | None = None,
        cleanup_hooks: list[CleanupHook] | None = None,
    ) -> None:
        self.client = client
        self.config = config or RuntimeConfig()
        self.role = role
        self.maintenance_config = maintenance or MaintenanceConfig()
        self.run_maintenance = run_maintenance
        self._extra_branches = list(branches or [])
        self._cleanup_hooks = list(cleanup_hooks or [])
        self.leader: MaintenanceLeader | None = None
        self._presence: Presence | None = None
        self.instance_id = self.config.instance_id
        self.inflight = InFlight()
        self._host: asyncio.Task[None] | None = None
        self._ready = anyio.Event()
        self._stop = anyio.Event()
        self._state = "new"  # new → starting → running → stopping → stopped
        self._lock = anyio.Lock()
        self._grace: float | None = None
        self.dispatchers: list[QueueDispatcher] = []
        self.buffer: CompletionBuffer | None = None
        self.heartbeat: Heartbeat | None = None
        self.wakeups: Wakeups | None = None

    @property
    def state(self) -> str:
        return self._state

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> Self:
        """Start and wait until dispatching; calling it again returns the same runtime."""
        async with self._lock:
            if self._state == "running":
                return self
            if self._state in ("stopping", "stopped"):
                raise RuntimeStateError(f"cannot start a runtime that is {self._state}")
            self._state = "starting"
            await self.client.connect()
            self._host = asyncio.get_running_loop().create_task(
                self._main(), name=f"awa-runtime {self.instance_id}"
            )
            ready = asyncio.ensure_future(self._ready.wait())
            done, _ = await asyncio.wait({ready, self._host}, return_when=asyncio.FIRST_COMPLETED)
            if self._host in done:
                ready.cancel()
                self._state = "stopped"
                self._host.result()  # re-raise the startup failure
                raise RuntimeStateError("runtime stopped during startup")
            self._state = "running"
            log.info(
                "runtime %s started (role=%s, queues=%s)",
                self.instance_id,
                self.role,
                self.config.queues,
            )
            return self

    async def shutdown(self, grace: float | None = None) -> None:
        """Stop claiming, let running handlers finish (up to ``grace``), record every result,
        release everything. Safe to call twice or on a runtime that never started."""
        if self._host is None:
            self._state = "stopped"
            return
        if self._state not in ("stopped",):
            self._state = "stopping"
        self._grace = self.config.shutdown_grace if grace is None else grace
        self._stop.set()
        await self._wait_host()

    async def abort(self) -> None:
        """Cancel everything now. Nothing is recorded for running jobs: rescue recovers them."""
        if self._host is None:
            return
        self._state = "stopping"
        self._host.cancel()
        await self._wait_host()

    async def _wait_host(self) -> None:
        assert self._host is not None
        try:
            await asyncio.shield(self._host)
        except asyncio.CancelledError:
            if not self._host.cancelled():
                raise
        finally:
            self._state = "stopped"

    async def run_until_stopped(self) -> None:
        """Start, then block until ``shutdown()``/``abort()`` finishes (CLI use)."""
        await self.start()
        await self._wait_host()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if t is None:
            await self.shutdown()
        else:
            await self.abort()

    # ------------------------------------------------------------------ body

    async def _main(self) -> None:
        store = self.client.store
        clock = self.client.clock
        metrics = self.client.metrics
        config = self.config
        self.wakeups = Wakeups(list(config.queues), clock)
        self.buffer = CompletionBuffer(
            store,
            self.inflight,
            clock,
            metrics,
            flush_interval=config.completion_flush_interval,
            batch=config.completion_batch,
        )
        self.heartbeat = Heartbeat(store, self.inflight, clock, config.heartbeat_interval)
        self.dispatchers = [
            QueueDispatcher(
                queue,
                limit,
                store=store,
                registry=self.client.registry,
                inflight=self.inflight,
                buffer=self.buffer,
                wakeups=self.wakeups,
                clock=clock,
                config=config,
                metrics=metrics,
            )
            for queue, limit in config.queues.items()
        ]
        await store.register_runtime(
            self.instance_id,
            socket.gethostname(),
            os.getpid(),
            self.role,
            dict(config.queues),
            self.client.registry.kinds(),
            clock.db_now(),
        )
        flushed = anyio.Event()
        self._presence = await Presence.acquire(store.url, self.instance_id)
        try:
            async with anyio.create_task_group() as services:
                await self._services(services, flushed)
        finally:
            with anyio.CancelScope(shield=True):
                if self._presence is not None:
                    await self._presence.close()
        try:
            await store.stop_runtime(self.instance_id, clock.db_now())
        except DatabaseUnavailable as exc:
            log.warning("could not mark runtime %s stopped: %s", self.instance_id, exc)
        log.info("runtime %s stopped", self.instance_id)

    async def _services(self, services: TaskGroup, flushed: anyio.Event) -> None:
        store = self.client.store
        config = self.config
        assert self.wakeups is not None and self.buffer is not None and self.heartbeat is not None
        services.start_soon(self._watch_presence)
        if self.run_maintenance:
            branches = default_branches(self.maintenance_config, self._cleanup_hooks)
            self.leader = MaintenanceLeader(
                store.url,
                self.instance_id,
                branches + self._extra_branches,
                self.maintenance_config,
                self.client.clock,
                self.client.metrics,
            )
            await services.start(self.leader.run)
        if config.notify:
            await services.start(self.wakeups.listen, store.url)
        services.start_soon(self._run_buffer, flushed)
        await services.start(self.heartbeat.run)
        await services.start(self._liveness)
        async with anyio.create_task_group() as executions:
            async with anyio.create_task_group() as dispatch:
                for dispatcher in self.dispatchers:
                    await dispatch.start(dispatcher.run, executions)
                self._ready.set()
                await self._stop.wait()
                for dispatcher in self.dispatchers:
                    dispatcher.stop()
            await self._drain_executions()
        self.buffer.close()
        await flushed.wait()
        services.cancel_scope.cancel()

    async def _watch_presence(self) -> None:
        """Keep the presence lock; if its connection dies, take it again (our running jobs
        may have been rescued meanwhile: their results will be rejected as stale)."""
        while True:
            assert self._presence is not None
            await self._presence.terminated.wait()
            log.warning("presence connection of %s lost; re-acquiring", self.instance_id)
            while True:
                try:
                    self._presence = await Presence.acquire(self.client.store.url, self.instance_id)
                    break
                except DatabaseUnavailable:
                    await self.client.clock.sleep(1.0)

    async def _drain_executions(self) -> None:
        grace = self._grace if self._grace is not None else self.config.shutdown_grace
        with anyio.move_on_after(grace):
            for dispatcher in self.dispatchers:
                await dispatcher.wait_idle()
        still = [e for e in self.inflight.snapshot() if e.stop_reason is None]
        if any(d.active for d in self.dispatchers):
            log.warning("grace period over: requeueing %d running jobs", len(still))
            for entry in still:
                entry.stop(StopReason.SHUTDOWN)

    async def _run_buffer(self, flushed: anyio.Event) -> None:
        assert self.buffer is not None
        try:
            await self.buffer.run()
        finally:
            flushed.set()

    async def _liveness(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        clock = self.client.clock
        while True:
            await clock.sleep(self.config.liveness_interval)
            try:
                await self.client.store.touch_runtime(self.instance_id, clock.db_now())
            except DatabaseUnavailable as exc:
                log.warning("liveness refresh failed: %s", exc)
