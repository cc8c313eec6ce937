"""The verbs that look at (and steer) what is stored: ``awa jobs``, ``awa queues``, ``awa
maintenance status``, ``awa cron`` and ``awa catalog``. All go through ``awa.admin``.

Verbs that change jobs or schedules borrow a connected client's pool (``Admin.of``), so an
unmigrated database is refused with "run `awa migrate`"; the status views open a one-
connection pool of their own (``Admin.open``) and only read what the leader persisted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from awa.admin import Admin
from awa.cli.args import Verbs, reporter, watch_arg
from awa.cli.output import emit, table
from awa.client import Client

__all__ = [
    "add_catalog_parser",
    "add_cron_parser",
    "add_jobs_parser",
    "add_queues_parser",
    "add_status_parser",
    "run_catalog",
    "run_cron",
    "run_jobs",
    "run_queues",
    "run_status",
    "watching",
]

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
_CRON_HEADERS = [
    "name",
    "expression",
    "tz",
    "misfire",
    "overlap",
    "status",
    "last_success",
    "last_fire",
    "next_fire",
    "missed",
]


def add_jobs_parser(sub: Verbs) -> None:
    jobs = sub.add_parser("jobs", help="list, show, cancel or retry jobs")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True)
    listing = jobs_sub.add_parser("list", help="list jobs, newest first")
    listing.add_argument("--state")
    listing.add_argument("--queue")
    listing.add_argument("--kind")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    for verb in ("show", "cancel", "retry"):
        p = jobs_sub.add_parser(verb, help=f"{verb} one job")
        p.add_argument("job_id", type=int)
        p.add_argument("--json", action="store_true")


def add_queues_parser(sub: Verbs) -> None:
    watch_arg(reporter(sub, "queues", "depth and lag per queue and state"))


def add_status_parser(maint_sub: Verbs) -> None:
    status = maint_sub.add_parser(
        "status", help="leader, lane mode and per-branch health (persisted by the leader)"
    )
    status.add_argument("--json", action="store_true")
    watch_arg(status)


def add_cron_parser(sub: Verbs) -> None:
    cron = sub.add_parser("cron", help="list, pause or resume cron schedules")
    cron_sub = cron.add_subparsers(dest="cron_command", required=True)
    cron_list = cron_sub.add_parser(
        "list", help="every schedule: policies, last success, last fire, next fire, misses"
    )
    cron_list.add_argument("--json", action="store_true")
    for verb, text in (("pause", "stop firing a schedule"), ("resume", "fire it again")):
        p = cron_sub.add_parser(verb, help=text)
        p.add_argument("name")
        p.add_argument("--json", action="store_true")


def add_catalog_parser(sub: Verbs) -> None:
    reporter(sub, "catalog", "queues and job kinds the applications declared, with descriptions")


async def _with_admin(url: str, body: Callable[[Admin], Awaitable[int]]) -> int:
    """Run ``body`` over a connected client's pool (schema version checked)."""
    async with Client(url) as client:
        return await body(Admin.of(client))


async def run_jobs(args: argparse.Namespace, url: str) -> int:
    async def body(admin: Admin) -> int:
        if args.jobs_command == "list":
            jobs = await admin.jobs.find(
                state=args.state, queue=args.queue, kind=args.kind, limit=args.limit
            )
            rows = [
                (
                    j.id,
                    j.kind,
                    j.queue,
                    j.state.value,
                    j.priority,
                    f"{j.attempt}/{j.max_attempts}",
                    j.run_at.isoformat(timespec="seconds"),
                )
                for j in jobs
            ]
            emit(
                [j.as_dict() for j in jobs],
                as_json=args.json,
                text=table(rows, ["id", "kind", "queue", "state", "prio", "attempt", "run_at"]),
            )
            return 0
        action = {"show": admin.jobs.get, "cancel": admin.jobs.cancel, "retry": admin.jobs.retry}
        job = await action[args.jobs_command](args.job_id)
        text = "\n".join(f"{k:>13}: {v}" for k, v in job.as_dict().items() if k != "duplicate")
        emit(job.as_dict(), as_json=args.json, text=text)
        return 0

    return await _with_admin(url, body)


async def run_queues(args: argparse.Namespace, url: str) -> int:
    async def body(admin: Admin) -> int:
        counts = await admin.jobs.queue_stats()
        rows = [
            (c.queue, c.state, c.count, "" if c.lag_s is None else f"{c.lag_s:.3f}") for c in counts
        ]
        emit(
            [c.__dict__ for c in counts],
            as_json=args.json,
            text=table(rows, ["queue", "state", "count", "lag_s"]) if rows else "no jobs",
        )
        return 0

    return await watching(args, lambda: _with_admin(url, body))


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


def _when(value: Any) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S%z")


def _cron_status(s: dict[str, Any]) -> str:
    if s["orphaned_at"]:
        return "orphaned"
    return "paused" if s["paused"] or s["operator_paused"] else "active"


async def run_cron(args: argparse.Namespace, url: str) -> int:
    async def body(admin: Admin) -> int:
        if args.cron_command == "pause":
            await admin.cron.pause(args.name)
        elif args.cron_command == "resume":
            await admin.cron.resume(args.name)
        schedules = await admin.cron.all()
        if args.cron_command != "list":
            schedules = [s for s in schedules if s["name"] == args.name]
        rows = [
            (
                s["name"],
                s["expression"],
                s["timezone"],
                s["misfire"],
                s["overlap"],
                _cron_status(s),
                _when(s["last_success_at"]),
                _when(s["last_fire_at"]),
                _when(s["next_fire_at"]),
                s["missed_total"],
            )
            for s in schedules
        ]
        emit(
            schedules,
            as_json=args.json,
            text=table(rows, _CRON_HEADERS) if rows else "no cron schedules",
        )
        return 0

    return await _with_admin(url, body)


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


async def watching(args: argparse.Namespace, show: Callable[[], Awaitable[int]]) -> int:
    """Run ``show`` once, or every ``--watch`` seconds (clearing the screen) until Ctrl-C."""
    interval = getattr(args, "watch", None)
    if interval is None:
        return await show()
    while True:
        if not args.json:
            print("\x1b[2J\x1b[H", end="")
        await show()
        sys.stdout.flush()
        await anyio.sleep(max(0.2, interval))
