"""Render the catalogue as the Markdown reference in ``docs/metrics.md``.

Kept in the package (not only in the generator script) so a test can compare the committed
file with a fresh rendering: the doc can never drift from the instruments awa creates.
"""

from __future__ import annotations

from awa.telemetry.catalogue import CATALOGUE, SPANS, InstrumentSpec, prometheus_label

__all__ = ["render_markdown"]

_HEADER = """\
# Metrics and spans

<!-- Generated from awa.telemetry.catalogue by `python docs/generate_metrics.py`; do not
edit by hand (tests/unit/test_telemetry_catalogue.py fails when this file is stale). -->

awa records through the OpenTelemetry API; nothing is exported until the application (or
the CLI) calls `awa.telemetry.configure(...)`, which sets up OTLP (from the standard
`OTEL_EXPORTER_OTLP_*` variables) and/or a Prometheus scrape endpoint. The *Prometheus*
column is the exact family name the Prometheus exporter produces; attribute keys become
labels with dots replaced by underscores (`awa.maintenance.branch` →
`awa_maintenance_branch`). Every series also carries `otel_scope_name="awa"`.

*Recorded by* says which component records an instrument: `client` (any producer),
`worker` (processes that run handlers), `leader` (only the process that currently holds
maintenance leadership; aggregate leader gauges across processes with `max`, not `sum`).

**Series that exist from start.** A counter series that appears with the value 1 hides its
first increment from `increase()` and `rate()`. So awa adds 0 to the label sets it knows in
advance (ADR 025): when a runtime starts, per queue it serves, `awa.jobs.claimed`,
`awa.jobs.claimed_on_insert` and `awa.jobs.stale_results`, and `awa.jobs.finished` with
outcome `completed`, `retried` and `failed` for every kind whose handler is declared on
that queue; when a lane starts, `awa.maintenance.branch.overrun` per branch; when leadership starts,
`awa.maintenance.elections` and `awa.jobs.rescued` per reason and outcome; the first time
the leader evaluates a cron schedule, `awa.cron.fired` and `awa.cron.missed` for it. Series
whose labels are only known when they happen (an `error.type`, a job of a kind declared on
another queue) still appear at their first event.
"""


_FOOTER = """\

## Export

```python
import awa.telemetry

telemetry = awa.telemetry.configure(service_name="billing-worker", prometheus_port=9464)
try:
    ...  # run awa.Runtime
finally:
    telemetry.shutdown()  # flushes the last metrics and spans
```

- **OTLP**: on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or the per-signal `…_METRICS_ENDPOINT` /
  `…_TRACES_ENDPOINT`) is set, or with `otlp=True`. `OTEL_EXPORTER_OTLP_PROTOCOL`
  (`http/protobuf`, the default, or `grpc`), `OTEL_EXPORTER_OTLP_HEADERS`,
  `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` work as
  for any OpenTelemetry service.
- **Prometheus**: `prometheus_port=N` serves `/metrics` on that port (`prometheus_host`,
  default `127.0.0.1`, loopback only; port 0 picks a free one, see
  `Telemetry.prometheus_address`). The CLI's `awa worker` and `awa maintenance run` take
  `--metrics-port N` and `--metrics-host` (same default): pass `0.0.0.0` (or the address of
  one interface) when Prometheus scrapes from another host or container.
- **Twice**: a second `configure` with the same options returns the running handle; with
  different options it raises `ConfigError`. After `shutdown()` a new *global* pipeline
  cannot be installed (OpenTelemetry sets global providers once per process): use
  `configure(set_global=False)` and pass `handle.instruments` to `awa.Client(metrics=...)`.
- **Traces**: `awa.job.run` is a child of the producer's span when `client.insert` ran inside
  one (the W3C `traceparent` travels in the job's metadata).

## Dashboards and alerts

`dashboards/awa-lanes.json` is a Grafana dashboard (import it and pick the Prometheus data
source): lane health (per-branch duration against interval, load, lateness, overrun
episodes, delayed state, errors, rows), leadership, queue depth and lag, pickup latency and
throughput, cron and outbox. `dashboards/awa-alerts.yml` holds Prometheus alerting rules:
SLO branch delayed or starting late, no maintenance leader, a branch failing repeatedly, a
cron schedule missing runs, an outbox backlog that keeps growing, a hygiene branch that
stopped running, queue lag, a job error rate per queue and kind, and no live runtime.

**Proof, not promise** (ADR 034): `python benchmarks/telemetry_run.py [--prometheus
/usr/bin/prometheus]` drives real events (jobs that complete, retry and fail, a paused
queue, a lock on `awa.jobs` under `lock_timeout`, a handler blocking the loop until its
attempt is rescued, cron fires and misses, failing and slowing hygiene branches, an
unreachable webhook sink) and prints, per instrument above, the largest value it reached
over OTLP and in the Prometheus scrape; with a Prometheus server it also prints
`increase()` over the first overrun (1), each panel query's result and each alert rule's
health. `tests/telemetry/test_scripted_run.py` runs it in CI with Debian's Prometheus and
fails naming any instrument without data.

One limit of histograms: a series is born at its first observation (OpenTelemetry has no
way to record "0 observations"), so `rate()` of a histogram whose label set saw a single
observation is 0 and its quantile NaN; panels show it from the second observation on.

## Logs

`awa --log-format json` (any verb; or `AWA_LOG_FORMAT=json`) writes one JSON object per
line on stderr: `time` (UTC, ISO 8601), `level`, `logger`, `message`; while a handler runs,
`job_id`, `kind`, `queue`, `attempt`, and `trace_id` / `span_id` (of the `awa.job.run`
span, else the producer's `traceparent`); `event` on maintenance decisions
(`leadership_gained`, `leadership_ended`, `leadership_deposed`, `leadership_lost`,
`lane_switch`, `branch_delayed`, `branch_recovered`, `branch_failed`, `cron_missed`,
`startup_recovery`) and on failed attempts (`job_retry`, `job_failed`, with
`exc_type` and `traceback`; logger `awa.worker.failures`, one record per attempt); other
fields a log call passed with `extra=`. An application that runs a `Runtime` itself
installs the same formatter with `awa.telemetry.logs.configure_logging("json")` (or
`JsonFormatter` on its own handler).
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _attributes(spec: InstrumentSpec) -> str:
    return ", ".join(f"`{a}`" for a in spec.attributes) or "—"


def render_markdown() -> str:
    """The full ``docs/metrics.md`` text."""
    lines = [_HEADER, "## Instruments", ""]
    lines.append("| Name | Instrument | Unit | Attributes | Prometheus | Recorded by | Meaning |")
    lines.append("|---|---|---|---|---|---|---|")
    for spec in CATALOGUE:
        lines.append(
            f"| `{spec.name}` | {spec.kind.value} | `{spec.unit}` | {_attributes(spec)} "
            f"| `{spec.prometheus_name}` | {spec.where} | {_cell(spec.description)} |"
        )
    lines += ["", "## Spans", "", "| Name | Kind | Attributes | Meaning |", "|---|---|---|---|"]
    for span in SPANS:
        attributes = ", ".join(f"`{a}`" for a in span.attributes)
        lines.append(f"| `{span.name}` | {span.kind} | {attributes} | {_cell(span.description)} |")
    labels = sorted({a for spec in CATALOGUE for a in spec.attributes})
    lines += ["", "## Attribute → Prometheus label", "", "| Attribute | Label |", "|---|---|"]
    lines += [f"| `{a}` | `{prometheus_label(a)}` |" for a in labels]
    return "\n".join(lines) + "\n" + _FOOTER
