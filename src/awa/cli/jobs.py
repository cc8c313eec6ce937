"""``awa jobs`` (list, show, cancel, retry, discard), through ``awa.admin``. It borrows a
connected client's pool (``Admin.of``), so an unmigrated database is refused with "run
`awa migrate`".

``retry``, ``cancel`` and ``discard`` take one job id, or a filter (``--state``,
``--queue``, ``--kind``, ``--tag``, ``--since``, ``--until``) for every job it matches
(ADR 032). Like the console's confirmation, a bulk run first says how many jobs it would
touch and does nothing; ``--yes`` acts on that many, ``--confirm N`` on at most N (for
scripts: refused if more match)."""

from __future__ import annotations

import argparse
import sys

from awa.admin import Admin
from awa.admin.jobs import JobFilter
from awa.cli.app import with_admin
from awa.cli.args import Verbs
from awa.cli.output import emit, table
from awa.errors import ValidationError

__all__ = ["add_parser", "run"]

_FILTERS = ("state", "queue", "kind", "tag", "since", "until")


def _filter_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--state", help="only jobs in this state (available, running, completed, failed, ...)"
    )
    p.add_argument("--queue", help="only jobs of this queue")
    p.add_argument("--kind", help="only jobs of this kind")
    p.add_argument("--tag", help="only jobs carrying this tag")
    p.add_argument("--since", help="only jobs finished at or after this ISO 8601 instant")
    p.add_argument("--until", help="only jobs finished before this ISO 8601 instant")


def add_parser(sub: Verbs) -> None:
    jobs = sub.add_parser("jobs", help="list, show, cancel, retry or discard jobs")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True)
    listing = jobs_sub.add_parser("list", help="list jobs, newest first")
    _filter_flags(listing)
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--before-id", type=int, help="only jobs with a smaller id (paging)")
    listing.add_argument("--json", action="store_true")
    show = jobs_sub.add_parser("show", help="show one job")
    show.add_argument("job_id", type=int, help="the job's id")
    show.add_argument("--json", action="store_true")
    for verb in ("cancel", "retry", "discard"):
        p = jobs_sub.add_parser(
            verb, help=f"{verb} one job, or every job a filter matches (--yes to act)"
        )
        p.add_argument("job_id", type=int, nargs="?", help="the job's id (or give a filter)")
        _filter_flags(p)
        act = p.add_mutually_exclusive_group()
        act.add_argument("--yes", action="store_true", help="act on the jobs the filter matches")
        act.add_argument(
            "--confirm", type=int, metavar="N", help="act on at most N jobs; refused if more match"
        )
        p.add_argument("--json", action="store_true")


def _where(args: argparse.Namespace) -> JobFilter:
    return JobFilter.of(**{k: getattr(args, k, None) for k in _FILTERS})


async def _bulk(admin: Admin, args: argparse.Namespace) -> int:
    verb = args.jobs_command
    where = _where(args)
    if where == JobFilter():
        raise ValidationError(
            "filter", None, f"give a job id or a filter (--{', --'.join(_FILTERS)})"
        )
    if args.confirm is None and not args.yes:
        count = await admin.jobs.count(verb, where)
        emit(
            {"action": verb, "filter": where.as_dict(), "count": count, "done": False},
            as_json=args.json,
            text=f"would {verb} {count} jobs ({where.describe()}); "
            f"nothing done: add --yes (or --confirm {count}) to act",
        )
        return 0
    confirmed = args.confirm if args.confirm is not None else await admin.jobs.count(verb, where)
    outcome = await admin.jobs.bulk(verb, where, confirmed=confirmed)
    emit(
        {**outcome.as_dict(), "filter": where.as_dict(), "done": True},
        as_json=args.json,
        text=f"{verb}: {outcome.acted} of {outcome.matched} jobs ({where.describe()}) "
        f"in {outcome.batches} batches",
    )
    return 0


async def run(args: argparse.Namespace, url: str, embedded: bool) -> int:
    async def body(admin: Admin) -> int:
        if args.jobs_command == "list":
            jobs = await admin.jobs.find(_where(args), limit=args.limit, before_id=args.before_id)
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
        if args.jobs_command != "show" and args.job_id is None:
            return await _bulk(admin, args)
        if args.jobs_command != "show" and (
            any(getattr(args, k) for k in _FILTERS) or args.yes or args.confirm is not None
        ):
            print("awa: error: give a job id or a filter, not both", file=sys.stderr)
            return 2
        action = {
            "show": admin.jobs.get,
            "cancel": admin.jobs.cancel,
            "retry": admin.jobs.retry,
            "discard": admin.jobs.discard,
        }
        job = await action[args.jobs_command](args.job_id)
        text = "\n".join(f"{k:>13}: {v}" for k, v in job.as_dict().items() if k != "duplicate")
        if args.jobs_command == "discard":
            text += "\n(discarded)"
        emit(job.as_dict(), as_json=args.json, text=text)
        return 0

    return await with_admin(url, body)
