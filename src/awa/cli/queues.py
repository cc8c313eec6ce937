"""``awa queues``: depth, lag and pause state per queue and state; ``awa queues pause NAME``
and ``awa queues resume NAME`` stop and restart claiming (ADR 024). Through ``awa.admin``
over a connected client's pool (``Admin.of``: an unmigrated database is refused with "run
`awa migrate`").

``awa queues`` with no verb is the listing, as it was before pausing existed; its table
gains a ``paused`` column and its JSON rows a ``paused`` field.
"""

from __future__ import annotations

import argparse

from awa.admin import Admin
from awa.cli.app import with_admin
from awa.cli.args import Verbs, reporter, watch_arg
from awa.cli.output import emit, table, watching

__all__ = ["add_parser", "run"]


def add_parser(sub: Verbs) -> None:
    queues = reporter(sub, "queues", "depth, lag and pause state per queue and state")
    watch_arg(queues)
    verbs = queues.add_subparsers(dest="queues_command", metavar="{pause,resume}")
    pause = verbs.add_parser(
        "pause",
        help="stop every runtime claiming a queue's jobs (they wait, available)",
        description="Stop every runtime claiming jobs of queue NAME until resumed. Jobs "
        "keep arriving and stay available; running ones finish. Idempotent.",
    )
    pause.add_argument("name", help="the queue to pause")
    pause.add_argument("--reason", help="a note kept with the pause (shown by `awa queues`)")
    pause.add_argument("--json", action="store_true")
    resume = verbs.add_parser(
        "resume",
        help="let runtimes claim a paused queue again (wakes them at once)",
        description="Resume queue NAME: its dispatchers are woken now, not at their next poll.",
    )
    resume.add_argument("name", help="the queue to resume")
    resume.add_argument("--json", action="store_true")


async def run(args: argparse.Namespace, url: str, embedded: bool) -> int:
    command = getattr(args, "queues_command", None)
    if command == "pause":
        return await with_admin(url, lambda admin: _pause(admin, args))
    if command == "resume":
        return await with_admin(url, lambda admin: _resume(admin, args))
    return await watching(args, lambda: with_admin(url, lambda admin: _list(admin, args)))


async def _list(admin: Admin, args: argparse.Namespace) -> int:
    counts = await admin.jobs.queue_stats()
    rows = [
        (
            c.queue,
            c.state,
            c.count,
            "" if c.lag_s is None else f"{c.lag_s:.3f}",
            "paused" if c.paused else "",
        )
        for c in counts
    ]
    emit(
        [c.__dict__ for c in counts],
        as_json=args.json,
        text=table(rows, ["queue", "state", "count", "lag_s", "paused"]) if rows else "no jobs",
    )
    return 0


async def _pause(admin: Admin, args: argparse.Namespace) -> int:
    outcome = await admin.queues.pause(args.name, args.reason)
    pause = outcome.pause
    since = pause.paused_at.strftime("%Y-%m-%d %H:%M:%S%z")
    note = f": {pause.reason}" if pause.reason else ""
    text = (
        f"paused queue {pause.queue!r} (by {pause.paused_by}{note})"
        if outcome.created
        else f"queue {pause.queue!r} was already paused since {since} "
        f"(by {pause.paused_by}{note}); unchanged"
    )
    emit({**pause.as_dict(), "created": outcome.created}, as_json=args.json, text=text)
    return 0


async def _resume(admin: Admin, args: argparse.Namespace) -> int:
    resumed = await admin.queues.resume(args.name)
    text = (
        f"resumed queue {args.name!r}"
        if resumed
        else f"queue {args.name!r} was not paused; unchanged"
    )
    emit({"queue": args.name, "resumed": resumed}, as_json=args.json, text=text)
    return 0
