"""``Runtime``: the composition root that runs dispatchers, heartbeat, completion flushing,
LISTEN wake-ups, the liveness row and the maintenance leader for one process.

Roles (side by side in the README):

- ``role="worker"`` (default) with maintenance: claims and runs jobs, and campaigns for
  maintenance leadership.
- ``role="worker", run_maintenance=False``: a plain worker; some other process must lead.
- ``role="maintenance"``: never claims, never runs a handler, never dispatches; runs the
  leader election and both lanes, publishes its liveness row (role ``maintenance``) and the
  application's declarations. Same election, lanes, shutdown and cancellation as a worker.
- ``tick()``: one bounded maintenance pass, no long-lived tasks (scale-to-zero).

This module is the lifecycle only (start, shutdown, abort, tick, roles). The package holds
the rest (ADR 017): ``host`` runs the services, executions and dispatch tiers of one start;
``wiring`` is the one place the runtime's pools and connections are opened; ``presence``
keeps the presence lock and liveness beat; ``recovery`` gives back dead runtimes' work
before ``start()`` returns; ``declarations`` publishes cron schedules, kinds and dead-letter
policies. ``abort()`` cancels everything at once; unfinished jobs stay ``running`` in the
database and are recovered by rescue.

The host task is referenced from a module-level set while it runs: dropping the ``Runtime``
handle does not stop (or garbage-collect) a running runtime.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from types import TracebackType
from typing import Self

import anyio

from awa.client import Client
from awa.config import MaintenanceConfig, RuntimeConfig, new_instance_id
from awa.errors import ConfigError, RuntimeStateError
from awa.events import Sink
from awa.maintenance import Branch, CleanupHook, MaintenanceLeader, default_branches
from awa.maintenance.leader_thread import LeaderThread
from awa.maintenance.tick import TickReport
from awa.runtime.declarations import warn_unserved_queues
from awa.runtime.gc_freeze import freeze_startup_objects
from awa.runtime.host import RuntimeHost
from awa.runtime.presence import PresenceKeeper
from awa.runtime.recovery import RecoveryReport
from awa.runtime.wiring import Wiring
from awa.worker import CompletionBuffer, Heartbeat, InFlight, QueueDispatcher, Wakeups
from awa.worker.claim_gate import ClaimGate

__all__ = ["ROLES", "Runtime"]

log = logging.getLogger("awa.runtime")

ROLES = ("worker", "maintenance")

#: Host tasks of running runtimes: asyncio keeps only weak references to tasks, and a
#: runtime must keep running after its caller drops the handle.
_RUNNING_HOSTS: set[asyncio.Task[None]] = set()


class Runtime:
    """Run the handlers registered on ``client`` for the queues in ``config`` and campaign
    for maintenance leadership (``role="worker"``), or run maintenance only
    (``role="maintenance"``: no queue is served even if ``config`` names some).

    ``run_maintenance=False`` makes a plain worker. ``branches`` adds application
    maintenance branches to the lanes; ``cleanup_hooks`` are called after each ``cleanup``
    pass of the hygiene lane. ``publish_declarations=False`` (the CLI's pool-only
    maintenance) skips everything that needs the application's declarations: ``cron_sync``
    and the start-up publication of cron schedules. ``sinks`` receive lifecycle events
    (job failed / rescued, cron fired / missed) from the outbox while this process leads
    maintenance (``adr/006-event-outbox.md``).
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
        publish_declarations: bool = True,
        sinks: Sequence[Sink] = (),
    ) -> None:
        if role not in ROLES:
            raise ConfigError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
        if role == "maintenance" and not run_maintenance:
            raise ConfigError("role='maintenance' with run_maintenance=False would do nothing")
        self.client = client
        self.config = config or RuntimeConfig()
        self.role = role
        self.queues: dict[str, int] = {} if role == "maintenance" else dict(self.config.queues)
        self.maintenance_config = maintenance or MaintenanceConfig()
        self.run_maintenance = run_maintenance
        self._extra_branches = list(branches or [])
        self._cleanup_hooks = list(cleanup_hooks or [])
        self.publish_declarations = publish_declarations
        self.sinks = list(sinks)
        #: The leader, on its own thread and loop (``LeaderThread``, ADR 013) by default.
        self.leader: MaintenanceLeader | LeaderThread | None = None
        self.instance_id = self.config.instance_id or new_instance_id()
        if self.config.instance_id != self.instance_id:
            # Every runtime built from one config gets its own identity (ADR 014).
            self.config = replace(self.config, instance_id=self.instance_id)
        self.gate = ClaimGate()
        self.presence: PresenceKeeper | None = None
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
        self.recovery: RecoveryReport | None = None
        self.failure: BaseException | None = None
        self._wiring: Wiring | None = None

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
            try:
                self._wiring = await Wiring.of(self.client, self.config, self.maintenance_config)
            except BaseException:
                self._state = "new"
                raise
            if self._stop.is_set():
                self._state = "stopped"
                raise RuntimeStateError(f"runtime {self.instance_id} was stopped while starting")
            host = asyncio.get_running_loop().create_task(
                self._main(), name=f"awa-runtime {self.instance_id}"
            )
            self._host = host
            _RUNNING_HOSTS.add(host)
            host.add_done_callback(self._host_done)
            ready = asyncio.ensure_future(self._ready.wait())
            try:
                done, _ = await asyncio.wait({ready, host}, return_when=asyncio.FIRST_COMPLETED)
            except BaseException:
                # The caller gave up on start() (cancelled): do not leave a half-started host.
                host.cancel()
                self._state = "stopped"
                raise
            finally:
                ready.cancel()
            if host in done:
                self._state = "stopped"
                if host.cancelled():
                    raise RuntimeStateError(
                        f"runtime {self.instance_id} was aborted while starting"
                    )
                host.result()  # re-raise the startup failure
                raise RuntimeStateError(f"runtime {self.instance_id} stopped during startup")
            if self._stop.is_set():
                raise RuntimeStateError(f"runtime {self.instance_id} was stopped while starting")
            self._state = "running"
            if self.config.freeze_gc:
                freeze_startup_objects()
            log.info(
                "runtime %s started (role=%s, queues=%s, maintenance=%s)",
                self.instance_id,
                self.role,
                self.queues,
                self.run_maintenance,
            )
            if self.role == "worker":
                warn_unserved_queues(self.client, self.queues)
            return self

    async def shutdown(self, grace: float | None = None) -> None:
        """Stop claiming, let running handlers finish (up to ``grace``), record every result,
        release everything. Safe to call twice or on a runtime that never started."""
        self._grace = self.config.shutdown_grace if grace is None else grace
        self._stop.set()
        if self._host is None:
            # Never started, or a start() is still connecting: it sees ``_stop`` and gives up.
            if self._state != "starting":
                self._state = "stopped"
            return
        if self._state != "stopped":
            self._state = "stopping"
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

    async def tick(self, *, wait: float = 0.0, force: bool = False) -> TickReport:
        """One bounded maintenance pass with this runtime's branches (see
        ``awa.maintenance.tick``); needs no ``start()``. Waits at most ``wait`` seconds for
        leadership; returns a report saying who leads if another process does."""
        wiring = await Wiring.of(self.client, self.config, self.maintenance_config)
        return await wiring.tick(
            self.instance_id,
            self.maintenance_branches(),
            self.client.clock,
            self.client.metrics,
            wait=wait,
            force=force,
        )

    def maintenance_branches(self) -> list[Branch]:
        """The built-in branches for this runtime's role and options, then the
        application's own."""
        builtin = default_branches(
            self.maintenance_config,
            self._cleanup_hooks,
            cron=self.client.cron if self.publish_declarations else None,
            dead_letters=self.client.dlq.policies if self.publish_declarations else None,
            sinks=self.sinks,
            instance_id=self.instance_id,
        )
        return builtin + list(self._extra_branches)

    # ------------------------------------------------------------------ body

    async def _main(self) -> None:
        """The host task: the runtime's own pool (``RuntimeConfig.pool_size``), so an
        application holding every connection of the client's pool cannot stall heartbeats
        and completions (that got healthy attempts rescued as stale and run twice)."""
        assert self._wiring is not None, "start() wires the runtime first"
        store = await self._wiring.open_store()
        try:
            await RuntimeHost(self, store, self._wiring).run()
        finally:
            with anyio.CancelScope(shield=True):
                await store.close()

    # ------------------------------------------------- what the host asks of it

    def mark_ready(self) -> None:
        """Every dispatcher runs: ``start()`` may return."""
        self._ready.set()

    async def stop_requested(self) -> None:
        """Return once ``shutdown()`` was called."""
        await self._stop.wait()

    @property
    def grace(self) -> float:
        """How long running handlers may finish after ``shutdown()``."""
        return self._grace if self._grace is not None else self.config.shutdown_grace

    def _host_done(self, host: asyncio.Task[None]) -> None:
        """Whatever ends the host task, the state says so (``/livez`` and ``/readyz`` must
        not report a dead runtime as ready); an unexpected failure is kept and logged."""
        _RUNNING_HOSTS.discard(host)
        if not host.cancelled() and host.exception() is not None:
            self.failure = host.exception()
            if self._state == "running":
                log.error("runtime %s died: %r", self.instance_id, self.failure)
        self._state = "stopped"
