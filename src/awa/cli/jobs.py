"""``awa jobs`` (list, show, cancel, retry), through ``awa.admin``. It borrows a connected
client's pool (``Admin.of``), so an unmigrated database is refused with "run `awa migrate`"."""

from __future__ import annotations

import argparse

from awa.admin import Admin
from awa.cli.app import with_admin
from awa.cli.args import Verbs
from awa.cli.output import emit, table

__all__ = ["add_parser", "run"]


def add_parser(sub: Verbs) -> None:
    jobs = sub.add_parser("jobs", help="list, show, cancel or retry jobs")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True)
    listing = jobs_sub.add_parser("list", help="list jobs, newest first")
    listing.add_argument(
        "--state", help="only jobs in this state (available, running, completed, failed, ...)"
    )
    listing.add_argument("--queue", help="only jobs of this queue")
    listing.add_argument("--kind", help="only jobs of this kind")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--json", action="store_true")
    for verb in ("show", "cancel", "retry"):
        p = jobs_sub.add_parser(verb, help=f"{verb} one job")
        p.add_argument("job_id", type=int, help="the job's id")
        p.add_argument("--json", action="store_true")


async def run(args: argparse.Namespace, url: str, embedded: bool) -> int:
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

    return await with_admin(url, body)
