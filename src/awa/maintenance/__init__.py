"""Maintenance: the leader, its SLO and hygiene lanes, and one module per branch."""

from awa.maintenance.branch import HYGIENE, SLO, Branch, BranchContext, BranchResult
from awa.maintenance.catalog import BUILTIN_BRANCHES, default_branches
from awa.maintenance.lane import BranchStats, Lane
from awa.maintenance.leader import DUE_CHANNEL, MaintenanceLeader

__all__ = [
    "BUILTIN_BRANCHES",
    "DUE_CHANNEL",
    "HYGIENE",
    "SLO",
    "Branch",
    "BranchContext",
    "BranchResult",
    "BranchStats",
    "Lane",
    "MaintenanceLeader",
    "default_branches",
]
