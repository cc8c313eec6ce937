"""``awa worker``: run an application's handlers (and, unless ``--no-maintenance``, campaign
for maintenance leadership) until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse

from awa.cli.app import load_app
from awa.cli.args import (
    Verbs,
    lanes_arg,
    queue_arg,
    seconds_arg,
    serving_args,
    sink_args,
    sinks_from_args,
)
from awa.cli.serving import run_until_signal
from awa.cli.worker_processes import add_process_options, supervise, watching_supervisor
from awa.config import MaintenanceConfig, RuntimeConfig
from awa.runtime import Runtime

__all__ = ["add_parser", "run"]


def add_parser(sub: Verbs) -> None:
    worker = sub.add_parser(
        "worker",
        help="run a worker for an application's handlers",
        description="Run a worker: claim and execute jobs for the handlers "
        "registered on the client object given by --app.",
    )
    worker.add_argument("--app", required=True, help="module:attribute of an awa.Client")
    worker.add_argument(
        "--queue",
        action="append",
        type=queue_arg,
        default=[],
        help="queue to serve, NAME[=CONCURRENCY] (repeatable; default default=50)",
    )
    worker.add_argument("--migrate", action="store_true", help="apply migrations before starting")
    worker.add_argument(
        "--shutdown-grace",
        type=seconds_arg,
        default=30.0,
        help="seconds running handlers get to finish after SIGINT/SIGTERM (default 30)",
    )
    worker.add_argument(
        "--no-maintenance",
        action="store_true",
        help="do not campaign for maintenance leadership (run `awa maintenance run` elsewhere)",
    )
    lanes_arg(worker)
    sink_args(worker)
    serving_args(worker)
    add_process_options(worker)


async def run(args: argparse.Namespace, url: str, embedded: bool) -> int:
    sinks = sinks_from_args(args.sink)  # a bad --sink fails here, before any child starts
    if args.processes > 1:  # a supervisor of N `awa worker` children (ADR 028)
        return await supervise(args, url, embedded)
    client = load_app(args.app)
    client.set_database_url(url)
    if args.migrate or embedded:
        await client.migrate()
    queues = dict(args.queue) or {"default": 50}
    runtime = Runtime(
        client,
        RuntimeConfig(queues=queues, shutdown_grace=args.shutdown_grace),
        maintenance=MaintenanceConfig(mode=args.lanes),
        run_maintenance=not args.no_maintenance,
        sinks=sinks,
    )
    banner = (
        f"worker {runtime.instance_id} running queues {queues} for kinds "
        f"{client.registry.kinds()}"
        + ("" if args.no_maintenance else f", maintenance lanes {args.lanes}")
        + (f", event sinks {[s.name for s in sinks]}" if sinks else "")
        + " (Ctrl-C to stop)"
    )
    async with client, watching_supervisor(args.supervisor_fd):
        await run_until_signal(runtime, banner, args)
    return 0
