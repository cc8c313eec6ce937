"""Cron: periodic jobs declared in code, with explicit misfire and overlap policies.

Pure logic only (expressions, declarations, the misfire decision); syncing and evaluation
run as branches of the maintenance leader's hygiene lane (``awa.maintenance.branches.cron_*``).
"""

from awa.cron.expression import CronExpression
from awa.cron.policy import Action, Decision, Plan, PreviousJob, plan_fires
from awa.cron.schedule import MISFIRE_ALIASES, CronSchedule, CronTable, Misfire, Overlap

__all__ = [
    "MISFIRE_ALIASES",
    "Action",
    "CronExpression",
    "CronSchedule",
    "CronTable",
    "Decision",
    "Misfire",
    "Overlap",
    "Plan",
    "PreviousJob",
    "plan_fires",
]
