"""Issue 17's acceptance: a scripted run shows every instrument of ``docs/metrics.md`` with
data in both exporters, and a real Prometheus server sees the first overrun and serves
every dashboard panel and alert rule.

``benchmarks/telemetry_run.py`` runs once for this module (in a child process, against this
session's server, in a fresh database): a runtime with a leader, real events only (jobs
that complete, retry and fail, a paused queue, a lock held on ``awa.jobs`` under
``lock_timeout``, a handler blocking the loop until the leader rescues its attempt, cron
fires and misses, a failing and a slowing hygiene branch, an unreachable webhook sink).
Its JSON report holds what the loopback OTLP receiver decoded and what the Prometheus
endpoint served; the tests below iterate ``awa.telemetry.CATALOGUE``, not a hand list, and
name every instrument without data.

With the ``prometheus`` binary on PATH (Debian's package; ``.ci/run`` installs it and sets
``AWA_REQUIRE_PROMETHEUS=1``, which turns the skip into a failure) the run is also scraped
every second by a real Prometheus server loading ``dashboards/awa-alerts.yml``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from awa.telemetry import CATALOGUE, SPANS

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "telemetry_run.py"

#: Instruments a scripted run cannot drive, and why. Keep it empty unless one truly cannot.
EXCLUDED: dict[str, str] = {}

PROMETHEUS = shutil.which("prometheus")
REQUIRED = os.environ.get("AWA_REQUIRE_PROMETHEUS") == "1"

#: The run takes ~20 s; a step that never happens waits 30 s before the report says so.
pytestmark = pytest.mark.timeout(400)


@pytest.fixture(scope="module")
def report(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    out = tmp_path_factory.mktemp("telemetry-run")
    command = [sys.executable, str(SCRIPT), "--json", str(out / "report.json")]
    if PROMETHEUS:
        command += ["--prometheus", PROMETHEUS]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["AWA_DATABASE_URL"] = server_url
    result = subprocess.run(
        command, cwd=out, env=env, capture_output=True, text=True, timeout=360, check=False
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    yield json.loads((out / "report.json").read_text())


def test_every_step_of_the_script_happened(report: dict[str, Any]) -> None:
    failed = [step for step in report["steps"] if not step["ok"]]
    assert failed == []


def test_every_catalogued_instrument_has_data_in_both_exporters(report: dict[str, Any]) -> None:
    missing = []
    for spec in CATALOGUE:
        if spec.name in EXCLUDED:
            continue
        if not report["otlp"].get(spec.name):
            missing.append(f"{spec.name} (OTLP)")
        if not report["prometheus_scrape"].get(spec.prometheus_name):
            missing.append(f"{spec.prometheus_name} (Prometheus scrape of {spec.name})")
    assert missing == [], f"instruments without data: {missing}"
    assert set(EXCLUDED) <= {spec.name for spec in CATALOGUE}  # no stale exclusion
    assert [s.name for s in SPANS if s.name not in report["spans"]] == []


@pytest.fixture
def prometheus(report: dict[str, Any]) -> dict[str, Any]:
    if "prometheus_server" not in report:
        if REQUIRED:
            pytest.fail("AWA_REQUIRE_PROMETHEUS=1 but no prometheus binary on PATH")
        pytest.skip("no prometheus binary on PATH (apt-get install prometheus)")
    data: dict[str, Any] = report["prometheus_server"]
    return data


def test_prometheus_sees_the_first_overrun_as_an_increase_of_one(
    prometheus: dict[str, Any],
) -> None:
    # Evaluated at the last sample's timestamp over a window reaching back past the series'
    # first sample (0): increase() extrapolates neither way, so this is the 0 -> 1 step.
    assert 0.9 <= prometheus["overrun_increase"] <= 1.1, prometheus


def test_every_dashboard_panel_query_returns_data(prometheus: dict[str, Any]) -> None:
    empty = [p for p in prometheus["panels"] if not p["series"] or not p["finite"]]
    assert empty == []
    assert len(prometheus["panels"]) >= 20


def test_every_alert_rule_loads_and_evaluates(prometheus: dict[str, Any]) -> None:
    assert sorted(r["name"] for r in prometheus["rules"]) == prometheus["rule_names"]
    unhealthy = [r for r in prometheus["rules"] if r["health"] != "ok"]
    assert unhealthy == []
