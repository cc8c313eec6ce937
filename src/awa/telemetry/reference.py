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
  default `0.0.0.0`; port 0 picks a free one, see `Telemetry.prometheus_address`).
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
cron schedule missing runs, and an outbox backlog that keeps growing.
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
