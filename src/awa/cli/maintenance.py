"""``awa maintenance status | run | tick``: read the leader's persisted health, run the
maintenance role only (never claims or runs handlers), or one bounded pass then exit.

``status`` reads through ``awa.admin`` over a one-connection pool of its own (``Admin.open``,
no schema check); ``run`` and ``tick`` build a maintenance-role ``Runtime``."""

from __future__ import annotations

import argparse

from awa.admin import Admin
from awa.cli.app import maintenance_client
from awa.cli.args import (
    Verbs,
    lanes_arg,
    seconds_arg,
    serving_args,
    sink_args,
    sinks_from_args,
    watch_arg,
)
from awa.cli.output import emit, table, watching
from awa.cli.serving import run_until_signal
from awa.config import MaintenanceConfig
from awa.runtime import Runtime

__all__ = ["add_parser", "run"]

RUN_HELP = """\
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

_STATUS_HEADERS = [
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


def add_parser(sub: Verbs) -> None:
    maint = sub.add_parser("maintenance", help="maintenance leader and lane health")
    verbs = maint.add_subparsers(dest="maintenance_command", required=True)
    status = verbs.add_parser(
        "status", help="leader, lane mode and per-branch health (persisted by the leader)"
    )
    status.add_argument("--json", action="store_true")
    watch_arg(status)

    run_only = verbs.add_parser(
        "run",
        help="run maintenance only (does NOT execute jobs)",
        description=RUN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run_only.add_argument(
        "--app",
        help="module:attribute of an awa.Client whose declarations (cron schedules, "
        "queue and kind descriptions) this process publishes; its handlers are NOT run",
    )
    run_only.add_argument("--migrate", action="store_true", help="apply migrations before starting")
    lanes_arg(run_only)
    sink_args(run_only)
    serving_args(run_only)

    tick = verbs.add_parser(
        "tick",
        help="one bounded maintenance pass, then exit",
        description="Become maintenance leader if possible (waiting at most --wait seconds), "
        "run every due branch once, print a per-branch report, release leadership. If "
        "another process leads, report that and do nothing. Does not execute jobs.",
    )
    tick.add_argument(
        "--wait",
        type=seconds_arg,
        default=0.0,
        help="seconds to wait for leadership (default 0: try once)",
    )
    tick.add_argument("--force", action="store_true", help="run every branch, due or not")
    tick.add_argument("--app", help="module:attribute of an awa.Client (for its declarations)")
    tick.add_argument("--json", action="store_true")


async def run(args: argparse.Namespace, url: str, embedded: bool) -> int:
    if args.maintenance_command == "run":
        return await _run_maintenance(args, url, embedded)
    if args.maintenance_command == "tick":
        return await _tick(args, url, embedded)
    return await watching(args, lambda: _show_status(args, url))


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


async def _show_status(args: argparse.Namespace, url: str) -> int:
    async with await Admin.open(url) as admin:
        lanes = await admin.maintenance.lanes()
    leader, health, stale = lanes["leader"], lanes["branches"], lanes["stale"]
    rows = [
        (
            h["lane"],
            h["branch"],
            f"{h['interval_s']:g}",
            _seconds(h["last_duration_s"]),
            _seconds(h["last_lateness_s"]),
            _seconds(h["max_lateness_s"]),
            h["runs"],
            h["errors"],
            h["overruns"],
            "STALE" if stale else "DELAYED" if h["delayed"] else "on time",
            h["rows_touched"],
        )
        for h in health
    ]
    if leader is None:
        head = "no maintenance leader has run against this database yet"
    else:
        alive = "alive" if lanes["leader_alive"] else "NOT alive (data STALE)"
        head = (
            f"leader {leader['instance_id']} since {leader['won_at']:%Y-%m-%d %H:%M:%S%z}, "
            f"lanes {leader['mode']} ({leader['mode_reason']}), {alive}"
        )
    if lanes["data_age_s"] is not None:  # the stale rule: ADR 031; the interval: ADR 033
        head += (
            f"\nhealth written {lanes['data_age_s']:.1f} s ago (stale after "
            f"{lanes['stale_after_s']:g} s: health interval {lanes['health_interval_s']:g} s, "
            f"{lanes['health_interval_source']})"
        )
    text = head + ("\n" + table(rows, _STATUS_HEADERS) if rows else "")
    document = {
        "leader": leader,
        "branches": health,
        **{k: lanes[k] for k in _LIVENESS},
    }
    emit(document, as_json=args.json, text=text)
    return 0


#: What ``status --json`` adds to leader and branches: how old the data is, and whether
#: that still makes a live leader.
_LIVENESS = (
    "now",
    "data_age_s",
    "stale",
    "stale_after_s",
    "leader_alive",
    "health_interval_s",
    "health_interval_source",
)


async def _run_maintenance(args: argparse.Namespace, url: str, embedded: bool) -> int:
    sinks = sinks_from_args(args.sink)
    client = maintenance_client(args, url)
    if args.migrate or embedded:
        await client.migrate()
    runtime = Runtime(
        client,
        role="maintenance",
        maintenance=MaintenanceConfig(mode=args.lanes),
        publish_declarations=bool(args.app),
        sinks=sinks,
    )
    banner = (
        f"maintenance-only runtime {runtime.instance_id} running, lanes {args.lanes}"
        + (f", event sinks {[s.name for s in sinks]}" if sinks else "")
        + "; it does not execute jobs (Ctrl-C to stop)"
    )
    async with client:
        await run_until_signal(runtime, banner, args)
    return 0


async def _tick(args: argparse.Namespace, url: str, embedded: bool) -> int:
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
