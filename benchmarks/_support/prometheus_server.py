"""A real Prometheus server (the ``prometheus`` binary, Debian's 2.42 in CI) scraping awa's
endpoint, and the queries an operator's stack runs against it: every Grafana panel query of
``dashboards/awa-lanes.json`` and every alert rule of ``dashboards/awa-alerts.yml``.

The server scrapes every second into a throwaway storage directory and loads the alert
rules file itself, so a rule that does not parse stops it from starting, and
``/api/v1/rules`` reports each rule's evaluation health. Grafana's template variables are
substituted the way "All" selects them (``$lane``, ``$branch``, ``$queue`` → ``.*``) and
``$__rate_interval`` by a window covering the scripted run.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

__all__ = ["PrometheusServer", "alert_rules", "panel_queries"]

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "dashboards" / "awa-lanes.json"
ALERTS = REPO / "dashboards" / "awa-alerts.yml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrometheusServer:
    """``prometheus`` scraping ``127.0.0.1:target_port`` every second."""

    binary: str
    target_port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    port: int = 0

    def start(self, timeout: float = 60.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {
                    "job_name": "awa",
                    "static_configs": [{"targets": [f"127.0.0.1:{self.target_port}"]}],
                }
            ],
        }
        config_file = self.workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        self.port = _free_port()
        log = (self.workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited ({self.process.returncode}): {self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus not ready after {timeout} s: {self.log()}")
            time.sleep(0.2)

    def log(self) -> str:
        path = self.workdir / "prometheus.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=30) as answer:
            body = json.loads(answer.read())
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query (at ``at``, Unix seconds; default now): the result vector."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        data = self.api("query", **params)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else []
        return result

    def rules(self) -> list[dict[str, Any]]:
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]


def panel_queries(window: str) -> list[tuple[str, str]]:
    """Every panel target of the dashboard as (panel title, PromQL), variables filled in."""
    dashboard = json.loads(DASHBOARD.read_text())
    out: list[tuple[str, str]] = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                expr = str(target.get("expr", ""))
                for variable in ("$lane", "$branch", "$queue"):
                    expr = expr.replace(variable, ".*")
                out.append((str(inner["title"]), expr.replace("$__rate_interval", window)))
    return out


def alert_rules() -> list[tuple[str, str]]:
    data = yaml.safe_load(ALERTS.read_text())
    return [(r["alert"], r["expr"]) for group in data["groups"] for r in group["rules"]]
