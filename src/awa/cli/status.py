"""``awa maintenance status`` (leader, lane mode, per-branch health) and ``awa catalog``
(what the applications declared). Both read what the maintenance leader persisted, through
``awa.admin`` over a one-connection pool of their own (``Admin.open``, no schema check)."""

from __future__ import annotations

import argparse

from awa.admin import Admin
from awa.cli.args import Verbs, reporter, watch_arg
from awa.cli.output import emit, table, watching

__all__ = ["add_catalog_parser", "add_status_parser", "run_catalog", "run_status"]

_STATUS_HEADERS = [
    "lane",
    "branch",
    "interval_s",
    "duration_s",
    "lateness_s",
    "max_late_s",
    "runs",
    "errors",
    "overruns",
    "health",
    "rows",
]


def add_status_parser(maint_sub: Verbs) -> None:
    status = maint_sub.add_parser(
        "status", help="leader, lane mode and per-branch health (persisted by the leader)"
    )
    status.add_argument("--json", action="store_true")
    watch_arg(status)


def add_catalog_parser(sub: Verbs) -> None:
    reporter(sub, "catalog", "queues and job kinds the applications declared, with descriptions")


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


async def _show_status(args: argparse.Namespace, url: str) -> int:
    async with await Admin.open(url) as admin:
        leader = await admin.maintenance.leader()
        health = await admin.maintenance.health()
    rows = [
        (
            h["lane"],
            h["branch"],
            f"{h['interval_s']:g}",
            _seconds(h["last_duration_s"]),
            _seconds(h["last_lateness_s"]),
            _seconds(h["max_lateness_s"]),
            h["runs"],
            h["errors"],
            h["overruns"],
            "DELAYED" if h["delayed"] else "on time",
            h["rows_touched"],
        )
        for h in health
    ]
    if leader is None:
        head = "no maintenance leader has run against this database yet"
    else:
        head = (
            f"leader {leader['instance_id']} since {leader['won_at']:%Y-%m-%d %H:%M:%S%z}, "
            f"lanes {leader['mode']} ({leader['mode_reason']})"
        )
    text = head + ("\n" + table(rows, _STATUS_HEADERS) if rows else "")
    emit({"leader": leader, "branches": health}, as_json=args.json, text=text)
    return 0


async def run_status(args: argparse.Namespace, url: str) -> int:
    return await watching(args, lambda: _show_status(args, url))


async def run_catalog(args: argparse.Namespace, url: str) -> int:
    async with await Admin.open(url) as admin:
        rows = await admin.maintenance.catalog()
    lines = [
        (r["type"], r["name"], r["queue"] or "", r["description"] or "", r["declared_by"])
        for r in rows
    ]
    text = table(lines, ["type", "name", "queue", "description", "declared_by"])
    emit(rows, as_json=args.json, text=text if rows else "nothing declared yet")
    return 0
