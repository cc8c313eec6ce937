"""``awa cron``: list schedules (queue, policies, last success, last and next fire, misses),
pause and resume them, through ``awa.admin`` over a connected client's pool. The queue is
the one fires are enqueued into (the schedule's own, else its handler's, as published), so
an operator can see at once whether a worker serves it."""

from __future__ import annotations

import argparse
from typing import Any

from awa.admin import Admin
from awa.cli.app import with_admin
from awa.cli.args import Verbs
from awa.cli.output import emit, table

__all__ = ["add_parser", "run"]

_CRON_HEADERS = [
    "name",
    "queue",
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


def add_parser(sub: Verbs) -> None:
    cron = sub.add_parser("cron", help="list, pause or resume cron schedules")
    cron_sub = cron.add_subparsers(dest="cron_command", required=True)
    cron_list = cron_sub.add_parser(
        "list", help="every schedule: queue, policies, last success, last fire, next fire, misses"
    )
    cron_list.add_argument("--json", action="store_true")
    for verb, text in (("pause", "stop firing a schedule"), ("resume", "fire it again")):
        p = cron_sub.add_parser(verb, help=text)
        p.add_argument("name")
        p.add_argument("--json", action="store_true")


def _when(value: Any) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S%z")


def _cron_status(s: dict[str, Any]) -> str:
    if s["orphaned_at"]:
        return "orphaned"
    return "paused" if s["paused"] or s["operator_paused"] else "active"


async def run(args: argparse.Namespace, url: str, embedded: bool) -> int:
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
                s["queue"],
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

    return await with_admin(url, body)
