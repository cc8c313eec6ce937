"""Maintenance: the leader, its SLO and hygiene lanes, the registry of built-in branches.

Machinery lives here (``branch``, ``lane``, ``leader``, ``leader_thread``, ``overrun``,
``tick``, ``builtin``, ``options``); the branches live in ``branches/``, one module per
branch named after it (ADR 017).
"""

from awa.maintenance.branch import (
    CRON_CHANGED,
    DUE,
    HYGIENE,
    SLO,
    WORK,
    Branch,
    BranchContext,
    BranchResult,
)
from awa.maintenance.builtin import BUILTIN_BRANCHES, build_branches, default_branches
from awa.maintenance.lane import BranchStats, Lane
from awa.maintenance.leader import DUE_CHANNEL, MaintenanceLeader
from awa.maintenance.options import BranchOptions, CleanupHook

__all__ = [
    "BUILTIN_BRANCHES",
    "CRON_CHANGED",
    "DUE",
    "DUE_CHANNEL",
    "HYGIENE",
    "SLO",
    "WORK",
    "Branch",
    "BranchContext",
    "BranchOptions",
    "BranchResult",
    "BranchStats",
    "CleanupHook",
    "Lane",
    "MaintenanceLeader",
    "build_branches",
    "default_branches",
]
