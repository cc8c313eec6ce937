"""The Grafana dashboard and the Prometheus alert rules name only metrics that exist.

Every PromQL expression in ``dashboards/awa-lanes.json`` (panel targets and template
variables) and ``dashboards/awa-alerts.yml`` is scanned: each ``awa_*`` token must be a sample
name from a real scrape of awa's Prometheus endpoint (every catalogued instrument recorded
once) or one of its labels; label matchers, ``by``/``on`` groupings, legends and alert
annotations may only use labels those metrics carry. A renamed instrument or attribute
therefore breaks this test instead of silently blanking a panel or muting an alert.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from opentelemetry import metrics as otel_metrics
from prometheus_client.parser import text_string_to_metric_families

from awa.telemetry import CATALOGUE, InstrumentKind, configure

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboards" / "awa-lanes.json"
ALERTS = ROOT / "dashboards" / "awa-alerts.yml"
SCOPE_LABELS = {"otel_scope_name", "otel_scope_version", "otel_scope_schema_url"}
# Labels Prometheus adds at scrape time (target labels), not awa attributes.
TARGET_LABELS = {"instance", "job"}


@pytest.fixture(scope="module")
def scraped_labels() -> Iterator[dict[str, set[str]]]:
    """Sample name → label names, from a real scrape with every instrument recorded."""
    with configure(prometheus_port=0, prometheus_host="127.0.0.1", set_global=False) as handle:
        instruments = handle.instruments
        for entry in CATALOGUE:
            attributes = {a: "x" for a in entry.attributes}
            instrument = instruments.instrument(entry.name)
            if entry.kind is InstrumentKind.HISTOGRAM:
                assert isinstance(instrument, otel_metrics.Histogram)
                instrument.record(0.1, attributes)
            elif isinstance(instrument, otel_metrics.Counter | otel_metrics.UpDownCounter):
                instrument.add(1, attributes)
        instruments.observe_queue_stats([{"queue": "x", "state": "available", "count": 1}])
        instruments.observe_branch("x", "x", interval=1.0, delayed=False)
        instruments.observe_outbox_backlog({"x": 1})
        assert handle.prometheus_address is not None
        url = f"http://127.0.0.1:{handle.prometheus_address[1]}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("awa_"):
                labels.setdefault(sample.name, set()).update(set(sample.labels) - SCOPE_LABELS)
    yield labels


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def panels(data: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in data["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def dashboard_queries(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(where, expr, legend) for every query in the dashboard."""
    queries = []
    for panel in panels(data):
        for target in panel.get("targets", []):
            queries.append((panel["title"], target["expr"], target.get("legendFormat", "")))
    for variable in data["templating"]["list"]:
        if variable["type"] == "query":
            queries.append((f"${variable['name']}", variable["query"]["query"], ""))
    return queries


def check_expression(
    expr: str,
    scraped: dict[str, set[str]],
    used_labels: Iterable[str] = (),
) -> list[str]:
    """Problems with one PromQL expression (empty when it only names real things)."""
    problems = []
    bare = re.sub(r'"[^"]*"', '""', expr)  # label values are free text
    known_labels = set().union(*scraped.values())
    metrics = []
    for match in re.finditer(r"\b(awa_\w+)\b(\s*\{([^}]*)\})?", bare):
        token, matchers = match.group(1), match.group(3)
        if token in scraped:
            metrics.append(token)
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers or ""):
                if label not in scraped[token]:
                    problems.append(f"{token} has no label {label}")
        elif token not in known_labels:
            problems.append(f"unknown metric or label {token}")
    if not metrics:
        problems.append("names no awa metric")
    available = set().union(*(scraped[m] for m in metrics)) | TARGET_LABELS
    if any(m.endswith("_bucket") for m in metrics):
        available.add("le")
    grouped = re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", bare)
    for label in {x.strip() for group in grouped for x in group.split(",") if x.strip()}:
        if label not in available:
            problems.append(f"groups by {label}, which none of {metrics} carries")
    m = re.match(r"label_values\((\w+).*,\s*(\w+)\)\s*$", bare)
    if m and m.group(2) not in scraped.get(m.group(1), set()):
        problems.append(f"label_values of {m.group(2)}, not a label of {m.group(1)}")
    for label in used_labels:
        if label not in available:
            problems.append(f"shows {label}, which none of {metrics} carries")
    return problems


# ------------------------------------------------------------------------- dashboard


def test_dashboard_is_a_well_formed_grafana_dashboard() -> None:
    data = dashboard()
    assert data["uid"] == "awa-lanes"
    assert data["title"]
    ids = [p["id"] for p in panels(data)]
    assert len(ids) == len(set(ids))
    for panel in panels(data):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert ref_ids and len(ref_ids) == len(set(ref_ids)), panel["title"]
    assert {v["name"] for v in data["templating"]["list"]} >= {"datasource", "lane", "branch"}


def test_every_dashboard_query_names_real_metrics_and_labels(
    scraped_labels: dict[str, set[str]],
) -> None:
    problems = []
    for where, expr, legend in dashboard_queries(dashboard()):
        shown = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
        problems += [f"{where}: {p}" for p in check_expression(expr, scraped_labels, shown)]
    assert not problems, "\n".join(problems)


def test_dashboard_covers_lane_health_leadership_queues_and_throughput() -> None:
    text = " ".join(expr for _, expr, _ in dashboard_queries(dashboard()))
    for metric in (
        "awa_maintenance_branch_duration_seconds_bucket",
        "awa_maintenance_branch_interval_seconds",
        "awa_maintenance_branch_lateness_seconds_bucket",
        "awa_maintenance_branch_overrun_total",
        "awa_maintenance_branch_errors_total",
        "awa_maintenance_branch_delayed",
        "awa_maintenance_leader",
        "awa_maintenance_elections_total",
        "awa_queue_depth",
        "awa_queue_lag_seconds",
        "awa_jobs_inserted_total",
        "awa_jobs_claimed_total",
        "awa_jobs_finished_total",
    ):
        assert metric in text, metric


def test_the_checker_rejects_what_it_should(scraped_labels: dict[str, set[str]]) -> None:
    """The scanner above is only useful if it fails on bad names."""
    assert check_expression("rate(awa_maintenance_branch_overrun_total[5m])", scraped_labels) == []
    assert check_expression("rate(awa_maintenance_branch_overrun[5m])", scraped_labels)
    assert check_expression('awa_queue_depth{branch="x"}', scraped_labels)
    assert check_expression("sum by (awa_queue) (awa_maintenance_leader)", scraped_labels)
    assert check_expression("up", scraped_labels)
    assert check_expression(
        "sum by (awa_queue) (awa_queue_depth)", scraped_labels, {"awa_job_kind"}
    )


# ---------------------------------------------------------------------------- alerts


def test_alert_rules_cover_the_issue_and_are_well_formed() -> None:
    rules = alert_rules()
    names = {rule["alert"] for rule in rules}
    assert {
        "AwaSloBranchDelayed",
        "AwaNoMaintenanceLeader",
        "AwaCronMissed",
        "AwaOutboxBacklogGrowing",
        # issue 17
        "AwaHygieneBranchStuck",
        "AwaQueueLagHigh",
        "AwaJobErrorRateHigh",
        "AwaNoLiveRuntime",
    } <= names
    assert len(names) == len(rules)
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"page", "warning"}
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]


def test_every_alert_names_real_metrics_and_labels(scraped_labels: dict[str, set[str]]) -> None:
    problems = []
    for rule in alert_rules():
        text = " ".join(rule["annotations"].values())
        shown = set(re.findall(r"\$labels\.(\w+)", text))
        problems += [
            f"{rule['alert']}: {p}" for p in check_expression(rule["expr"], scraped_labels, shown)
        ]
    assert not problems, "\n".join(problems)


def test_slo_alerts_name_exactly_the_slo_lane_branches() -> None:
    from awa.config import MaintenanceConfig
    from awa.maintenance import SLO, default_branches

    slo = {b.name for b in default_branches(MaintenanceConfig()) if b.lane == SLO}
    for rule in alert_rules():
        if rule["alert"].startswith("AwaSloBranch"):
            (names,) = re.findall(r'awa_maintenance_branch=~"([^"]+)"', rule["expr"])
            assert set(names.split("|")) == slo, rule["alert"]
        if rule["alert"] == "AwaHygieneBranchStuck":  # every branch but the SLO ones
            (names,) = re.findall(r'awa_maintenance_branch!~"([^"]+)"', rule["expr"])
            assert set(names.split("|")) == slo, rule["alert"]
