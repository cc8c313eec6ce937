"""Shared pieces of the maintenance and runtime tests: fast leader settings and who holds
the leadership lock, read from ``pg_locks`` of the real server."""

from __future__ import annotations

from typing import Any

import asyncpg

from awa.config import MaintenanceConfig
from awa.store.leadership import LEADER_LOCK_KEY

LOCK_CLASSID = LEADER_LOCK_KEY >> 32
LOCK_OBJID = LEADER_LOCK_KEY & 0xFFFFFFFF


def maint_config(**overrides: Any) -> MaintenanceConfig:
    options: dict[str, Any] = {
        "startup_jitter": 0,
        "election_interval": 0.2,
        "leader_check_interval": 0.2,
        "health_interval": 0.2,
    }
    options.update(overrides)
    return MaintenanceConfig(**options)


async def lock_holders(raw: asyncpg.Connection) -> list[int]:
    """Backend pids holding the leadership advisory lock in this database."""
    rows = await raw.fetch(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
        " AND classid = $1::bigint::oid AND objid = $2::bigint::oid"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        LOCK_CLASSID,
        LOCK_OBJID,
    )
    return [int(r["pid"]) for r in rows]
