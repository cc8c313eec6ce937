"""The metrics catalogue: well-formed, documented, and named as the exporters really name it.

The Prometheus mapping is checked against a real scrape over HTTP: every catalogued
instrument is recorded once (with every attribute it declares), the endpoint from
``configure(prometheus_port=0)`` is fetched, and the sample names and labels must be exactly
what ``InstrumentSpec.prometheus_series`` / ``prometheus_labels`` say. The dashboards test
relies on that mapping.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import metrics as otel_metrics
from prometheus_client.parser import text_string_to_metric_families

from awa import telemetry
from awa.telemetry import CATALOGUE, SPANS, InstrumentKind, Instruments, configure, spec
from awa.telemetry.catalogue import prometheus_label
from awa.telemetry.reference import render_markdown

ROOT = Path(__file__).resolve().parents[2]
SCOPE_LABELS = {"otel_scope_name", "otel_scope_version", "otel_scope_schema_url"}


def record_everything(instruments: Instruments) -> None:
    """One sample on every catalogued instrument, with every attribute it declares."""
    for entry in CATALOGUE:
        attributes = {a: "x" for a in entry.attributes}
        instrument = instruments.instrument(entry.name)
        if entry.kind is InstrumentKind.HISTOGRAM:
            assert isinstance(instrument, otel_metrics.Histogram)
            instrument.record(0.2, attributes)
        elif entry.kind is InstrumentKind.COUNTER:
            assert isinstance(instrument, otel_metrics.Counter)
            instrument.add(1, attributes)
        elif entry.kind is InstrumentKind.UP_DOWN_COUNTER:
            assert isinstance(instrument, otel_metrics.UpDownCounter)
            instrument.add(1, attributes)
    instruments.observe_queue_stats(
        [{"queue": "x", "state": "available", "count": 3, "lag_s": 1.5}]
    )
    instruments.observe_queue_paused({"x": True})
    instruments.observe_branch("x", "x", interval=1.0, delayed=True)
    instruments.observe_outbox_backlog({"x": 4})


def scrape(address: tuple[str, int]) -> str:
    port = address[1]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        return str(response.read().decode())


@pytest.fixture(scope="module")
def scraped() -> Iterator[str]:
    """The text of a real scrape after ``record_everything``."""
    with configure(
        "catalogue-test", prometheus_port=0, prometheus_host="127.0.0.1", set_global=False
    ) as handle:
        record_everything(handle.instruments)
        assert handle.prometheus_address is not None
        yield scrape(handle.prometheus_address)


def awa_samples(text: str) -> dict[str, set[frozenset[str]]]:
    """Sample name → the label-name sets seen on it (scope labels and ``le`` removed)."""
    out: dict[str, set[frozenset[str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            # prometheus_client adds *_created only in OpenMetrics; tolerate it, it is not
            # something dashboards query.
            if sample.name.startswith("awa_") and not sample.name.endswith("_created"):
                labels = frozenset(sample.labels) - SCOPE_LABELS - {"le"}
                out.setdefault(sample.name, set()).add(labels)
    return out


# ----------------------------------------------------------------------------- the data


def test_catalogue_names_are_unique_and_namespaced() -> None:
    names = [s.name for s in CATALOGUE]
    assert len(names) == len(set(names))
    prometheus = [s.prometheus_name for s in CATALOGUE]
    assert len(prometheus) == len(set(prometheus))
    for entry in CATALOGUE:
        assert re.fullmatch(r"awa(\.[a-z_]+)+", entry.name), entry.name
        assert entry.description.endswith((".", ")")), entry.name
        assert entry.where in {"client", "worker", "leader"}, entry.name
        assert len(set(entry.attributes)) == len(entry.attributes), entry.name


def test_units_follow_the_conventions() -> None:
    for entry in CATALOGUE:
        if entry.kind is InstrumentKind.HISTOGRAM:
            assert entry.unit == "s", f"{entry.name}: durations are in seconds"
        elif entry.kind in (InstrumentKind.COUNTER, InstrumentKind.UP_DOWN_COUNTER):
            assert re.fullmatch(r"\{[a-z]+\}", entry.unit), f"{entry.name}: {{thing}} unit"
        else:
            assert entry.unit in {"s", "1"} or re.fullmatch(r"\{[a-z]+\}", entry.unit)


def test_issue_seven_minimum_is_catalogued_with_the_agreed_names() -> None:
    overrun = spec(telemetry.BRANCH_OVERRUN)
    assert overrun.prometheus_name == "awa_maintenance_branch_overrun_total"
    assert overrun.attributes == ("awa.maintenance.lane", "awa.maintenance.branch", "branch")
    for name in (
        telemetry.BRANCH_DURATION,
        telemetry.BRANCH_LATENESS,
        telemetry.BRANCH_ERRORS,
        telemetry.BRANCH_ROWS,
    ):
        assert spec(name).attributes[:2] == ("awa.maintenance.lane", "awa.maintenance.branch")
    assert spec(telemetry.CRON_FIRED).name == "awa.cron.fired"
    assert spec(telemetry.CRON_MISSED).name == "awa.cron.missed"
    assert spec(telemetry.CRON_MISSED).attributes == ("awa.cron.schedule",)
    assert spec(telemetry.JOBS_RESCUED).attributes[0] == "awa.rescue.reason"
    assert spec(telemetry.QUEUE_DEPTH).attributes == ("awa.queue", "awa.job.state")
    assert spec(telemetry.QUEUE_DEPTH).kind is InstrumentKind.OBSERVABLE_GAUGE
    for name in (
        telemetry.JOBS_INSERTED,
        telemetry.JOBS_CLAIMED,
        telemetry.JOBS_FINISHED,
        telemetry.JOBS_STALE_RESULTS,
        telemetry.HANDLER_DURATION,
        telemetry.PICKUP_LATENCY,
        telemetry.QUEUE_LAG,
        telemetry.ELECTIONS,
        telemetry.LEADER,
        telemetry.OUTBOX_BACKLOG,
        telemetry.BRANCH_INTERVAL,
        telemetry.BRANCH_DELAYED,
    ):
        assert spec(name) in CATALOGUE


def test_names_other_modules_import_still_work() -> None:
    from awa.telemetry import (  # noqa: F401
        BRANCH_DURATION,
        BRANCH_ERRORS,
        BRANCH_LATENESS,
        BRANCH_OVERRUN,
        BRANCH_ROWS,
        ELECTIONS,
        FLUSH_ERRORS,
        HANDLER_DURATION,
        JOBS_CLAIMED,
        JOBS_FINISHED,
        JOBS_INSERTED,
        JOBS_STALE_RESULTS,
        LEADER,
        PICKUP_LATENCY,
        Instruments,
        instruments,
    )

    assert ELECTIONS == "awa.maintenance.elections"
    assert isinstance(instruments(), Instruments)
    assert instruments() is instruments()
    assert set(telemetry.__all__) <= set(dir(telemetry))


def test_every_catalogued_instrument_is_created_with_its_unit_and_description() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    record_everything(Instruments(MeterProvider(metric_readers=[reader])))
    data = reader.get_metrics_data()
    assert data is not None
    seen = {
        m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    assert set(seen) == {s.name for s in CATALOGUE}
    for entry in CATALOGUE:
        metric = seen[entry.name]
        assert metric.unit == entry.unit, entry.name
        assert metric.description == entry.description, entry.name
        for point in metric.data.data_points:
            assert tuple(point.attributes or {}) == entry.attributes, entry.name


# --------------------------------------------------------------------- the docs


def test_metrics_doc_is_generated_from_the_catalogue() -> None:
    committed = (ROOT / "docs" / "metrics.md").read_text()
    assert committed == render_markdown(), "stale: run python docs/generate_metrics.py"
    for entry in CATALOGUE:
        assert f"`{entry.name}`" in committed
        assert f"`{entry.prometheus_name}`" in committed
    for span in SPANS:
        assert f"`{span.name}`" in committed


def test_generator_check_mode_passes_on_the_committed_doc() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "generate_metrics.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------ the Prometheus names


def test_prometheus_mapping_matches_a_real_scrape(scraped: str) -> None:
    samples = awa_samples(scraped)
    expected = {series for s in CATALOGUE for series in s.prometheus_series}
    assert set(samples) == expected
    for entry in CATALOGUE:
        for series in entry.prometheus_series:
            assert samples[series] == {frozenset(entry.prometheus_labels)}, series


def test_overrun_counter_scrapes_under_its_agreed_name(scraped: str) -> None:
    line = next(
        line for line in scraped.splitlines() if line.startswith("awa_maintenance_branch_overrun")
    )
    assert line.startswith("awa_maintenance_branch_overrun_total{")
    assert 'awa_maintenance_branch="x"' in line
    assert 'awa_maintenance_lane="x"' in line


def test_labels_are_attribute_keys_with_underscores() -> None:
    assert prometheus_label("awa.maintenance.branch") == "awa_maintenance_branch"
    assert prometheus_label("error.type") == "error_type"


# ------------------------------------------------------------------ API-only library


def test_library_imports_only_the_opentelemetry_api() -> None:
    """``import awa`` and a Client must not pull in the SDK: the application chooses it."""
    code = textwrap.dedent(
        """
        import sys
        import awa
        client = awa.Client("postgresql://localhost/x")
        client.params("k", {}, metadata={"a": 1})
        sdk = sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk"))
        print(",".join(sdk))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
