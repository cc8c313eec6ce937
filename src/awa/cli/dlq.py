"""``awa dlq``: list, show, retry and purge dead letters; list dead-letter policies.

``add_parser`` adds the verbs to the ``awa`` parser and ``run`` executes them. The
module also runs on its own (``python -m awa.cli.dlq --database-url URL dlq list``) with
the same verbs and output.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import anyio

from awa.admin import Admin
from awa.admin.dlq import DeadLetter, RetryOutcome
from awa.cli.args import Verbs
from awa.cli.output import emit, table
from awa.client import Client
from awa.errors import AwaError, ConfigError

__all__ = ["add_parser", "main", "run"]

_REASON_WIDTH = 60


def add_parser(subparsers: Verbs) -> None:
    """Add ``dlq list|show|retry|purge|policies`` (each with ``--json``)."""
    dlq = subparsers.add_parser(
        "dlq",
        help="dead-letter hold: list, show, retry or purge failed jobs kept for operators",
        description="Failed jobs of queues with a dead-letter policy are moved to the hold "
        "by the maintenance leader. Retry makes a fresh job (new id, attempt 0); the letter "
        "is kept, marked retried, until its retention or a purge.",
    )
    verbs = dlq.add_subparsers(dest="dlq_command", required=True)

    listing = verbs.add_parser("list", help="dead letters, newest first")
    listing.add_argument("--queue", help="only letters of this queue")
    listing.add_argument("--kind", help="only letters of this job kind")
    listing.add_argument(
        "--all", action="store_true", dest="include_retried", help="include retried letters"
    )
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--before-id", type=int, help="page: ids below this one")
    listing.add_argument("--json", action="store_true")

    show = verbs.add_parser("show", help="one dead letter with its full error history")
    show.add_argument("id", type=int, help="the dead letter's id")
    show.add_argument("--json", action="store_true")

    retry = verbs.add_parser(
        "retry", help="run dead letters again as fresh jobs (exit 1 if any is refused)"
    )
    retry.add_argument("ids", type=int, nargs="*", metavar="ID", help="dead letter ids")
    retry.add_argument("--queue", help="every pending letter of this queue")
    retry.add_argument("--all", action="store_true", help="every pending letter")
    retry.add_argument("--limit", type=int, default=1000, help="with --queue/--all (1000)")
    retry.add_argument("--json", action="store_true")

    purge = verbs.add_parser("purge", help="delete dead letters for good")
    purge.add_argument("ids", type=int, nargs="*", metavar="ID", help="dead letter ids")
    purge.add_argument("--queue", help="every letter of this queue")
    purge.add_argument("--all", action="store_true", help="every letter of every queue")
    purge.add_argument(
        "--retried", action="store_true", help="with --queue/--all: only retried letters"
    )
    purge.add_argument("--json", action="store_true")

    policies = verbs.add_parser("policies", help="stored dead-letter policies and their counts")
    policies.add_argument("--json", action="store_true")


def _when(value: Any) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S%z")


def _short(text: str) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= _REASON_WIDTH else line[: _REASON_WIDTH - 3] + "..."


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "until purged"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)


def _letter_text(letter: DeadLetter) -> str:
    head = {k: v for k, v in letter.as_dict().items() if k != "errors"}
    lines = [f"{k:>17}: {_value(v)}" for k, v in head.items()]
    lines.append(f"{'errors':>17}: {len(letter.errors)} record(s)")
    for index, record in enumerate(letter.errors, 1):
        lines.append(
            f"  #{index} attempt {record.get('attempt')} at {record.get('at')} "
            f"[{record.get('kind')}{'/' + record['type'] if record.get('type') else ''}]: "
            f"{record.get('message')}"
        )
        trace = record.get("traceback")
        if trace:
            lines.extend("      " + line for line in str(trace).rstrip().splitlines())
    return "\n".join(lines)


def _one_target(ids: Sequence[int], queue: str | None, every: bool, verb: str) -> None:
    if sum((bool(ids), queue is not None, every)) != 1:
        raise ConfigError(f"awa dlq {verb}: give ids, or --queue NAME, or --all (exactly one)")


async def run(args: argparse.Namespace, url: str, embedded: bool = False) -> int:
    """Execute one ``awa dlq`` verb against ``url``; the exit code."""
    async with Client(url) as client:
        dlq = Admin.of(client).dlq
        command = args.dlq_command
        if command == "list":
            letters = await dlq.list_letters(
                queue=args.queue,
                kind=args.kind,
                include_retried=args.include_retried,
                limit=args.limit,
                before_id=args.before_id,
            )
            rows = [
                (
                    d.id,
                    d.kind,
                    d.queue,
                    f"{d.attempt}/{d.max_attempts}",
                    _when(d.dead_at),
                    "" if d.retried_job_id is None else d.retried_job_id,
                    _short(d.reason),
                )
                for d in letters
            ]
            headers = ["id", "kind", "queue", "attempt", "dead_at", "retried_as", "reason"]
            emit(
                [d.as_dict() for d in letters],
                as_json=args.json,
                text=table(rows, headers) if rows else "no dead letters",
            )
            return 0
        if command == "show":
            letter = await dlq.get(args.id)
            emit(letter.as_dict(), as_json=args.json, text=_letter_text(letter))
            return 0
        if command == "retry":
            _one_target(args.ids, args.queue, args.all, "retry")
            outcomes: list[RetryOutcome]
            if args.ids:
                outcomes = await dlq.retry_many(args.ids)
            else:
                outcomes = await dlq.retry_all(queue=args.queue, limit=args.limit)
            results = [(o.dead_letter_id, o.job_id or "", o.error or "ok") for o in outcomes]
            emit(
                [o.as_dict() for o in outcomes],
                as_json=args.json,
                text=table(results, ["dead_letter", "new_job", "result"])
                if results
                else "no pending dead letters",
            )
            return 1 if any(o.error for o in outcomes) else 0
        if command == "purge":
            _one_target(args.ids, args.queue, args.all, "purge")
            if args.ids and not args.retried:  # named letters: every one exists, or an error
                purged = await dlq.purge_letters(args.ids)
            else:
                purged = await dlq.purge(
                    args.ids, queue=args.queue, everything=args.all, retried_only=args.retried
                )
            emit({"purged": purged}, as_json=args.json, text=f"purged {purged} dead letter(s)")
            return 0
        if command == "policies":
            policies = await dlq.list_policies()
            stored = [
                (
                    p.queue,
                    _duration(p.retention_s),
                    "orphaned" if p.orphaned_at else "active",
                    p.pending,
                    p.retried,
                    p.synced_by,
                    _when(p.declared_seen_at),
                )
                for p in policies
            ]
            headers = ["queue", "retention", "status", "pending", "retried", "synced_by", "seen"]
            emit(
                [p.as_dict() for p in policies],
                as_json=args.json,
                text=table(stored, headers) if stored else "no dead-letter policies",
            )
            return 0
    raise ConfigError(f"unknown dlq command {command!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m awa.cli.dlq --database-url URL dlq VERB …`` (same as ``awa dlq``)."""
    parser = argparse.ArgumentParser(prog="awa-dlq", description=__doc__)
    parser.add_argument("--database-url", required=True, help="PostgreSQL URL")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return anyio.run(run, args, args.database_url)
    except AwaError as exc:
        print(f"awa: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
