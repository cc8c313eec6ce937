"""The verbs that run awa: ``awa worker``, ``awa maintenance run`` and ``awa maintenance
tick``. Each builds a ``Runtime`` for the loaded application; the long-running ones serve
health and metrics when asked and shut down gracefully on SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import signal

import anyio

from awa.cli.app import load_app, maintenance_client
from awa.cli.args import Verbs, lanes_arg, queue_arg, serving_args
from awa.cli.output import emit, table
from awa.config import MaintenanceConfig, RuntimeConfig
from awa.runtime import Runtime
from awa.telemetry import configure
from awa.web import health_app, serve

__all__ = [
    "add_maintenance_run_parser",
    "add_tick_parser",
    "add_worker_parser",
    "run_maintenance",
    "run_tick",
    "run_worker",
]

log = logging.getLogger("awa.cli")

MAINTENANCE_RUN_HELP = """\
Run the maintenance role only: leader election and both lanes (promote scheduled and
retryable jobs, rescue stale heartbeats, expired deadlines and expired callbacks, cleanup,
storage rotation, queue stats, priority aging, admin metadata) plus this process's
liveness row (role "maintenance").

This process NEVER claims or executes jobs and never dispatches HTTP workers: you still
need at least one worker (`awa worker`) to run them.

Without --app (pool only), it runs only the maintenance that needs no application
declarations: cron schedules are evaluated as stored in the database but not synced from
code. With --app it also publishes the application's declarations.
"""

#: OTLP export is set up only when one of these says where to send (or --metrics-port).
_OTLP_ENDPOINT_VARS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)


def add_worker_parser(sub: Verbs) -> None:
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
    worker.add_argument("--shutdown-grace", type=float, default=30.0)
    worker.add_argument(
        "--no-maintenance",
        action="store_true",
        help="do not campaign for maintenance leadership (run `awa maintenance run` elsewhere)",
    )
    lanes_arg(worker)
    serving_args(worker)


def add_maintenance_run_parser(maint_sub: Verbs) -> None:
    run = maint_sub.add_parser(
        "run",
        help="run maintenance only (does NOT execute jobs)",
        description=MAINTENANCE_RUN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--app",
        help="module:attribute of an awa.Client whose declarations (cron schedules, "
        "queue and kind descriptions) this process publishes; its handlers are NOT run",
    )
    run.add_argument("--migrate", action="store_true", help="apply migrations before starting")
    lanes_arg(run)
    serving_args(run)


def add_tick_parser(maint_sub: Verbs) -> None:
    tick = maint_sub.add_parser(
        "tick",
        help="one bounded maintenance pass, then exit",
        description="Become maintenance leader if possible (waiting at most --wait seconds), "
        "run every due branch once, print a per-branch report, release leadership. If "
        "another process leads, report that and do nothing. Does not execute jobs.",
    )
    tick.add_argument("--wait", type=float, default=0.0, help="seconds to wait for leadership")
    tick.add_argument("--force", action="store_true", help="run every branch, due or not")
    tick.add_argument("--app", help="module:attribute of an awa.Client (for its declarations)")
    tick.add_argument("--json", action="store_true")


async def run_worker(args: argparse.Namespace, url: str, embedded: bool) -> int:
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
    )
    banner = (
        f"worker {runtime.instance_id} running queues {queues} for kinds "
        f"{client.registry.kinds()}"
        + ("" if args.no_maintenance else f", maintenance lanes {args.lanes}")
        + " (Ctrl-C to stop)"
    )
    async with client:
        await _run_until_signal(runtime, banner, args)
    return 0


async def run_maintenance(args: argparse.Namespace, url: str, embedded: bool) -> int:
    client = maintenance_client(args, url)
    if args.migrate or embedded:
        await client.migrate()
    runtime = Runtime(
        client,
        role="maintenance",
        maintenance=MaintenanceConfig(mode=args.lanes),
        publish_declarations=bool(args.app),
    )
    banner = (
        f"maintenance-only runtime {runtime.instance_id} running, lanes {args.lanes}; it does "
        "not execute jobs (Ctrl-C to stop)"
    )
    async with client:
        await _run_until_signal(runtime, banner, args)
    return 0


async def run_tick(args: argparse.Namespace, url: str, embedded: bool) -> int:
    client = maintenance_client(args, url)
    if embedded:
        await client.migrate()
    async with client:
        runtime = Runtime(client, role="maintenance", publish_declarations=bool(args.app))
        report = await runtime.tick(wait=args.wait, force=args.force)
    if not report.leader:
        text = f"not leader: maintenance leadership is held by {report.held_by}; nothing done"
    else:
        rows = [
            (
                b.branch,
                b.lane,
                "ran" if b.ran else "not due",
                "" if b.duration_s is None else f"{b.duration_s:.4f}",
                ", ".join(f"{k}={v}" for k, v in b.rows.items() if v) or "",
                b.error or "",
            )
            for b in report.branches
        ]
        text = table(rows, ["branch", "lane", "status", "duration_s", "rows", "error"])
    emit(report.as_dict(), as_json=args.json, text=text)
    return 1 if report.errors else 0


async def _run_until_signal(
    runtime: Runtime, banner: str, args: argparse.Namespace | None = None
) -> None:
    """Start ``runtime``, print ``banner``, serve its health endpoint if asked, and shut
    down gracefully on SIGINT/SIGTERM."""
    metrics_port = getattr(args, "metrics_port", None)
    otlp = any(os.environ.get(v) for v in _OTLP_ENDPOINT_VARS)
    if metrics_port is None and not otlp:
        await _serve_runtime(runtime, banner, args)
        return
    telemetry = await anyio.to_thread.run_sync(lambda: configure(prometheus_port=metrics_port))
    if telemetry.prometheus_address is not None:
        host, port = telemetry.prometheus_address
        print(f"Prometheus metrics on http://{host}:{port}/metrics", flush=True)
    try:
        await _serve_runtime(runtime, banner, args)
    finally:
        await anyio.to_thread.run_sync(telemetry.shutdown)


async def _serve_runtime(runtime: Runtime, banner: str, args: argparse.Namespace | None) -> None:
    async with anyio.create_task_group() as tg:
        health_port = getattr(args, "health_port", None)
        if args is not None and health_port is not None:
            bound = await tg.start(serve, health_app(runtime), args.health_host, health_port)
            print(f"health endpoint on http://{args.health_host}:{bound}/health", flush=True)

        async def on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    log.warning(
                        "received %s: shutting down gracefully", signal.Signals(signum).name
                    )
                    await runtime.shutdown()
                    return

        tg.start_soon(on_signal)
        await runtime.start()
        print(banner, flush=True)
        await runtime.run_until_stopped()
        tg.cancel_scope.cancel()
