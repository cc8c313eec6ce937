"""What hosts a runtime's work while it runs: the services, executions and dispatch tiers.

One host task (``Runtime._main``) owns an anyio task group with three tiers: *services*
(presence, event-loop lag monitor, the maintenance leader on a thread and loop of its own
(ADR 013), the LISTEN wake-ups, completion flusher and heartbeat), *executions* (handlers)
and *dispatch* (claim loops). Shutdown unwinds them in order: stop claiming, let handlers
finish within the grace period (then stop the rest and requeue them), flush results, cancel
services, mark the liveness row stopped.

The host writes what it builds (dispatchers, buffer, heartbeat, wake-ups, presence, leader,
recovery report) onto the ``Runtime``, whose attributes tests and the web health checks
read; the ``Runtime`` itself keeps only the lifecycle.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from awa.runtime.declarations import publish_declarations
from awa.runtime.presence import PresenceKeeper
from awa.runtime.wiring import Wiring
from awa.store import Store
from awa.worker import CompletionBuffer, Heartbeat, QueueDispatcher, StopReason, Wakeups
from awa.worker.loop_monitor import LoopMonitor
from awa.worker.work_announcer import WorkAnnouncer

if TYPE_CHECKING:
    from awa.runtime import Runtime

__all__ = ["RuntimeHost"]

log = logging.getLogger("awa.runtime")


class RuntimeHost:
    """Runs one start of ``runtime`` on ``store`` (its own pool) until it is stopped."""

    def __init__(self, runtime: Runtime, store: Store, wiring: Wiring) -> None:
        self.runtime = runtime
        self.store = store
        self.wiring = wiring

    async def run(self) -> None:
        rt = self.runtime
        store = self.store
        clock = rt.client.clock
        metrics = rt.client.metrics
        config = rt.config
        rt.wakeups = Wakeups(list(config.queues), clock)
        rt.buffer = CompletionBuffer(
            store,
            rt.inflight,
            clock,
            metrics,
            flush_interval=config.completion_flush_interval,
            batch=config.completion_batch,
        )
        rt.heartbeat = Heartbeat(store, rt.inflight, clock, config.heartbeat_interval, metrics)
        self.announcer = WorkAnnouncer(store, clock, metrics)
        rt.dispatchers = [
            QueueDispatcher(
                queue,
                limit,
                store=store,
                registry=rt.client.registry,
                inflight=rt.inflight,
                buffer=rt.buffer,
                wakeups=rt.wakeups,
                clock=clock,
                config=config,
                metrics=metrics,
                gate=rt.gate,
                announcer=self.announcer,
            )
            for queue, limit in rt.queues.items()
        ]
        flushed = anyio.Event()
        wakeups = rt.wakeups
        rt.presence = PresenceKeeper(
            store,
            rt.instance_id,
            rt.inflight,
            rt.gate,
            wakeups.notify_all,
            clock,
            metrics,
            check_interval=config.presence_check_interval,
            beat_interval=config.presence_beat_interval,
            liveness_interval=config.liveness_interval,
            holder_silence=rt.maintenance_config.holder_silence,
            register=self.register,
        )
        await rt.presence.acquire()  # RuntimeStateError: the instance id is in use
        try:
            # Only once the instance id is ours: a runtime refused for a colliding id must
            # not have rewritten the live holder's liveness row and declarations first.
            await self.register()
            if rt.publish_declarations:
                await publish_declarations(store, rt.client, rt.instance_id)
            rt.recovery = await self.wiring.recover(clock)
            async with anyio.create_task_group() as services:
                await self._services(services, flushed)
        finally:
            # Also after abort(): a runtime that no longer runs its jobs says so (stopped
            # row, lock released), so rescue and the next start's recovery need not wait
            # for its silence (ADR 014). Bounded: the database may be what failed.
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(2.0):
                    try:
                        await store.runtimes.stop_runtime(rt.instance_id, clock.db_now())
                    except Exception as exc:  # any class: the row ages out instead
                        log.warning("could not mark runtime %s stopped: %s", rt.instance_id, exc)
                await rt.presence.close()
        log.info("runtime %s stopped", rt.instance_id)

    async def register(self) -> None:
        """Write this runtime's liveness row (at start, and again if it was collected)."""
        rt = self.runtime
        await self.store.runtimes.register_runtime(
            rt.instance_id,
            socket.gethostname(),
            os.getpid(),
            rt.role,
            dict(rt.queues),
            rt.client.registry.kinds() if rt.queues else [],
            rt.client.clock.db_now(),
        )

    async def _services(self, services: TaskGroup, flushed: anyio.Event) -> None:
        rt = self.runtime
        config = rt.config
        assert rt.wakeups is not None and rt.buffer is not None and rt.heartbeat is not None
        assert rt.presence is not None
        await services.start(rt.presence.run)
        await services.start(LoopMonitor(rt.client.metrics, name=rt.instance_id).run)
        if rt.run_maintenance:
            rt.leader = self.wiring.leader(
                rt.instance_id, rt.maintenance_branches(), rt.client.clock, rt.client.metrics
            )
            await services.start(rt.leader.run)
        if config.notify and rt.queues:
            await services.start(rt.wakeups.listen, self.wiring.url)
        services.start_soon(self._run_buffer, flushed)
        await services.start(rt.heartbeat.run)
        if rt.queues:
            await services.start(self.announcer.run)
        async with anyio.create_task_group() as executions:
            async with anyio.create_task_group() as dispatch:
                for dispatcher in rt.dispatchers:
                    await dispatch.start(dispatcher.run, executions)
                local = rt.client.local_claims
                takers = rt.dispatchers if config.claim_on_insert else []
                for dispatcher in takers:
                    local.add(dispatcher)
                try:
                    rt.mark_ready()
                    await rt.stop_requested()
                finally:  # no producer may hand a job to a dispatcher that stops claiming
                    for dispatcher in takers:
                        local.discard(dispatcher)
                for dispatcher in rt.dispatchers:
                    dispatcher.stop()
            await self._drain_executions()
        rt.buffer.close()
        await flushed.wait()
        services.cancel_scope.cancel()

    async def _drain_executions(self) -> None:
        rt = self.runtime
        grace = rt.grace
        with anyio.move_on_after(grace):
            for dispatcher in rt.dispatchers:
                await dispatcher.wait_idle()
        for dispatcher in rt.dispatchers:
            dispatcher.grace_over()
        still = [e for e in rt.inflight.snapshot() if e.stop_reason is None]
        if any(d.active for d in rt.dispatchers):
            log.warning("grace period over: requeueing %d running jobs", len(still))
            for entry in still:
                entry.stop(StopReason.SHUTDOWN)

    async def _run_buffer(self, flushed: anyio.Event) -> None:
        assert self.runtime.buffer is not None
        try:
            await self.runtime.buffer.run()
        finally:
            flushed.set()
