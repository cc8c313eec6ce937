"""The one place a runtime opens its resources: pools, stores, the leader's connections.

Why one place: a runtime needs the database in several ways (its own pool for heartbeats
and completions, the LISTEN connection for wake-ups, the maintenance leader's pools, the
short-lived connection of startup recovery, a tick's). Each used to read
``client.store.url`` where it stood; here the address is read once, after the client has
connected, and every resource of the runtime is opened from it, with the sizes its config
asks for. What each part does with its resource stays in that part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from awa.client import Client
from awa.clock import Clock
from awa.config import MaintenanceConfig, RuntimeConfig
from awa.maintenance import Branch, MaintenanceLeader
from awa.maintenance.leader_thread import LeaderThread, isolated
from awa.maintenance.tick import TickReport, tick
from awa.runtime.recovery import RecoveryReport, recover_at_startup
from awa.store import Store
from awa.telemetry import Instruments

__all__ = ["Wiring"]


@dataclass(frozen=True)
class Wiring:
    """Opens what one runtime uses, all from one database address."""

    url: str
    config: RuntimeConfig
    maintenance: MaintenanceConfig

    @classmethod
    async def of(
        cls, client: Client, config: RuntimeConfig, maintenance: MaintenanceConfig
    ) -> Wiring:
        """Connect ``client`` (idempotent) and take the address it connected to."""
        await client.connect()
        return cls(client.store.url, config, maintenance)

    async def open_store(self) -> Store:
        """The runtime's own pool (``RuntimeConfig.pool_size``), so an application holding
        every connection of the client's pool cannot stall heartbeats and completions."""
        return await Store.open(self.url, min_size=1, max_size=self.config.pool_size)

    async def open_recovery_store(self) -> Store:
        """Startup recovery's short-lived store: one connection, opened per attempt."""
        return await Store.open(self.url, min_size=1, max_size=1)

    def leader(
        self,
        instance_id: str,
        branches: Sequence[Branch],
        clock: Clock,
        metrics: Instruments,
    ) -> MaintenanceLeader | LeaderThread:
        """The maintenance leader, on its own thread and loop unless configured otherwise
        (ADR 013); it opens its election connection and lane pools from ``url``."""
        leader = MaintenanceLeader(
            self.url, instance_id, branches, self.maintenance, clock, metrics
        )
        return isolated(leader, isolate=self.maintenance.isolate)

    async def recover(self, clock: Clock) -> RecoveryReport:
        """Startup recovery (``awa.runtime.recovery``), retried per the config's policy."""
        return await recover_at_startup(
            self.open_recovery_store,
            self.config.startup_recovery,
            clock,
            crash_grace=self.maintenance.crash_grace,
            # Conservative: rescuing a live runtime's jobs would run them twice; the presence
            # lock is the precise signal, this is only the backstop for hung processes.
            liveness_ttl=max(120.0, 6 * self.config.liveness_interval),
            holder_silence=self.maintenance.holder_silence,
        )

    async def tick(
        self,
        instance_id: str,
        branches: Sequence[Branch],
        clock: Clock,
        metrics: Instruments,
        *,
        wait: float,
        force: bool,
    ) -> TickReport:
        """One bounded maintenance pass (``awa.maintenance.tick``) on its own connections."""
        return await tick(
            self.url,
            instance_id,
            list(branches),
            self.maintenance,
            clock,
            metrics,
            wait=wait,
            force=force,
        )
