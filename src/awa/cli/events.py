"""``awa events``: the lifecycle-event outbox for operators (list, sink status, flush,
purge, forget), through ``awa.admin``. Delivery itself is the ``deliver_events`` maintenance
branch's job."""

from __future__ import annotations

import argparse
from typing import Any

from awa.admin import Admin
from awa.cli.args import Verbs
from awa.cli.output import emit, table

__all__ = ["add_parser", "run"]


def add_parser(sub: Verbs) -> None:
    events = sub.add_parser("events", help="lifecycle events and their delivery to sinks")
    verbs = events.add_subparsers(dest="events_command", required=True)
    listing = verbs.add_parser("list", help="newest events first, with per-sink delivery state")
    listing.add_argument("--kind", help="job.failed, job.rescued, cron.fired or cron.missed")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    sinks = verbs.add_parser("sinks", help="each sink: backlog, parked, backoff, last error")
    flush = verbs.add_parser("flush", help="make outstanding deliveries (parked too) due now")
    flush.add_argument("--sink", help="only this sink's deliveries (default: every sink)")
    purge = verbs.add_parser("purge", help="drop parked deliveries (the only way to drop one)")
    purge.add_argument("--sink", help="only this sink's deliveries (default: every sink)")
    purge.add_argument("--all", action="store_true", help="pending deliveries too")
    forget = verbs.add_parser("forget", help="forget a sink removed from the code")
    forget.add_argument("sink", help="the sink's name")
    for p in (listing, sinks, flush, purge, forget):
        p.add_argument("--json", action="store_true")


async def run(args: argparse.Namespace, url: str, embedded: bool) -> int:
    async with await Admin.open(url) as admin:
        events = admin.events
        command = args.events_command
        if command == "list":
            rows = await events.recent(limit=args.limit, kind=args.kind)
            emit(rows, as_json=args.json, text=_events_text(rows))
        elif command == "sinks":
            rows = await events.sinks()
            headers = list(rows[0]) if rows else []
            text = table([list(r.values()) for r in rows], headers) if rows else "no sinks"
            emit(rows, as_json=args.json, text=text)
        else:
            if command == "flush":
                count = await events.flush(args.sink)
            elif command == "purge":
                count = await events.purge(args.sink, include_pending=args.all)
            else:
                count = await events.forget(args.sink)
            emit({command: count}, as_json=args.json, text=f"{command}: {count} deliveries")
        return 0


def _events_text(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no events"
    lines = [
        (r.get("id"), r.get("kind"), r.get("occurred_at"), r.get("job_id"), r.get("deliveries"))
        for r in rows
    ]
    return table(lines, ["id", "kind", "occurred_at", "job_id", "deliveries"])
