"""Every instrument of ``docs/metrics.md`` with data, from real events (issue 17's acceptance;
a script, run by ``tests/telemetry/test_scripted_run.py``).

One runtime with the maintenance leader against a fresh database, exporting at once over
OTLP/HTTP to a loopback receiver and on a Prometheus endpoint (``awa.telemetry.configure``),
and, with ``--prometheus BIN``, scraped every second by a real Prometheus server. Then, in
order (``_support/telemetry_scenario.py`` drives each):

1. jobs: completed, retried then completed, failed (one attempt), each with its pickup
   latency and handler duration; a webhook sink whose endpoint is down keeps their events
   in the outbox (backlog);
2. a paused queue with jobs waiting (depth, lag, paused);
3. a database fault: with ``lock_timeout`` set on the database (as many deployments do), a
   session holds ``LOCK TABLE awa.jobs`` while a job is running and finishes: heartbeats
   and the completion flush fail on the lock (loop errors, flush errors), then recover;
4. a handler that blocks the event loop past the heartbeat staleness: the leader rescues
   its attempt (heartbeat), the handler's late completion is a stale result, the event-loop
   lag is recorded, and the retry completes;
5. cron: a schedule that fires every second, one that misses (its queue has no worker);
6. a user hygiene branch that raises twice (branch errors) and one that turns slow: the
   first overrun episode (``increase()`` over it must be 1 in Prometheus).

Then it prints, per catalogued instrument, the largest value it reached in each exporter
(0 or absent: no data), the spans received, and with Prometheus the overrun increase, each
dashboard panel's result size and each alert rule's evaluation health.

``python benchmarks/telemetry_run.py [--prometheus /usr/bin/prometheus] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio

import _support  # noqa: F401 - before awa: puts this checkout's src/ first on sys.path
from _support.cli import add_server_args
from _support.prometheus_server import PrometheusServer
from _support.server import BenchServer, fresh_database
from _support.telemetry_probe import OtlpReceiver
from _support.telemetry_scenario import Scenario, prepare_database
from awa.telemetry import CATALOGUE, SPANS, configure


async def run(url: str, prometheus_binary: str | None, workdir: Path) -> dict[str, Any]:
    receiver = OtlpReceiver()
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.start()
    os.environ.pop("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", None)
    os.environ.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
    os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    handle = configure(
        "awa-telemetry-run",
        prometheus_port=0,
        prometheus_host="127.0.0.1",
        export_interval=1.0,
        set_global=False,
    )
    assert handle.prometheus_address is not None
    port = handle.prometheus_address[1]
    server = None
    if prometheus_binary:
        server = PrometheusServer(prometheus_binary, port, workdir / "prometheus")
        await anyio.to_thread.run_sync(server.start)
    report: dict[str, Any] = {}
    try:
        scenario = Scenario(url, handle.instruments, port, server, receiver.metric_peaks)
        await scenario.run()
        report["steps"] = scenario.steps
        report["prometheus_scrape"] = scenario.final_scrape
        if scenario.prometheus_report is not None:
            report["prometheus_server"] = scenario.prometheus_report
    finally:
        await anyio.to_thread.run_sync(handle.shutdown)  # the last OTLP export
        receiver.stop()
        if server is not None:
            await anyio.to_thread.run_sync(server.stop)
    report["otlp"] = receiver.metric_peaks()
    report["spans"] = sorted(receiver.span_names())
    return report


def print_table(report: dict[str, Any]) -> None:
    otlp, scraped = report["otlp"], report["prometheus_scrape"]
    rows = [("instrument", "OTLP peak", "Prometheus family", "scrape peak")]
    for spec in CATALOGUE:
        rows.append(
            (
                spec.name,
                _fmt(otlp.get(spec.name)),
                spec.prometheus_name,
                _fmt(scraped.get(spec.prometheus_name)),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    missing = missing_instruments(report)
    print(f"instruments without data: {missing or 'none'}")
    spans = [s.name for s in SPANS if s.name not in report["spans"]]
    print(f"spans received: {report['spans']}; missing: {spans or 'none'}")
    prom = report.get("prometheus_server")
    if prom:
        print(f"Prometheus: increase(overrun) over the first episode = {prom['overrun_increase']}")
        for panel in prom["panels"]:
            print(f"  panel {panel['title']!r}: {panel['series']} series  {panel['expr'][:70]}")
        for rule in prom["rules"]:
            print(f"  rule {rule['name']}: health {rule['health']} {rule.get('lastError', '')}")


def missing_instruments(report: dict[str, Any]) -> list[str]:
    """Catalogued instruments with no non-zero value in one exporter or the other."""
    return [
        spec.name
        for spec in CATALOGUE
        if not report["otlp"].get(spec.name)
        or not report["prometheus_scrape"].get(spec.prometheus_name)
    ]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_server_args(parser, data_dir="bench-pgdata")
    parser.add_argument("--prometheus", help="a prometheus binary to scrape the run with")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    server = BenchServer(args.data_dir, durable=not args.fast)
    server_url = server.start()

    async def go() -> dict[str, Any]:
        async with fresh_database(server_url, "telemetry") as url:
            await prepare_database(url)
            with tempfile.TemporaryDirectory(prefix="awa-telemetry-run-") as tmp:
                return await run(url, args.prometheus, Path(tmp))

    try:
        report = anyio.run(go)
    finally:
        server.stop()
    report["missing"] = missing_instruments(report)
    print_table(report)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
