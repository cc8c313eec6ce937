"""The two places a scripted telemetry run reads its metrics from, as an operator's stack
would: an OTLP/HTTP receiver on loopback (what a collector receives) and a scrape of awa's
Prometheus endpoint (what Prometheus stores). Neither records anything itself.

``OtlpReceiver`` decodes every ``/v1/metrics`` and ``/v1/traces`` POST with the
``opentelemetry-proto`` classes; ``scrape`` parses the text exposition format with
``prometheus_client``'s parser. Both summarise each metric as the largest value it reached
(counters and gauges: the largest data point of any series; histograms: the largest
count), which is what "this instrument has data" is judged on: a series that exists but
never left 0 is not proof that the code path that records it ran.
"""

from __future__ import annotations

import gzip
import threading
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["OtlpReceiver", "scrape", "scrape_text"]


@dataclass
class OtlpReceiver:
    """A loopback OTLP/HTTP collector: keeps every request body, answers 200."""

    metrics: list[bytes] = field(default_factory=list)
    traces: list[bytes] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> str:
        """Serve on a free loopback port; returns the endpoint for ``OTEL_EXPORTER_OTLP_*``."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path == "/v1/metrics":
                    receiver.metrics.append(body)
                    answer = metrics_service_pb2.ExportMetricsServiceResponse()
                else:
                    receiver.traces.append(body)
                    answer = trace_service_pb2.ExportTraceServiceResponse()
                payload = answer.SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def metric_peaks(self) -> dict[str, float]:
        """OTLP metric name → the largest value any of its data points reached."""
        peaks: dict[str, float] = {}
        for body in self.metrics:
            request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
            for resource in request.resource_metrics:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        for value in _values(metric):
                            peaks[metric.name] = max(peaks.get(metric.name, 0.0), value)
        return peaks

    def span_names(self) -> set[str]:
        names: set[str] = set()
        for body in self.traces:
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    names.update(span.name for span in scope.spans)
        return names


def _values(metric: Any) -> list[float]:
    kind = metric.WhichOneof("data")
    if kind == "histogram":
        return [float(p.count) for p in metric.histogram.data_points]
    points = getattr(metric, kind).data_points if kind in ("sum", "gauge") else []
    return [
        abs(float(p.as_int if p.WhichOneof("value") == "as_int" else p.as_double)) for p in points
    ]


def scrape_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def scrape(port: int) -> dict[str, float]:
    """Prometheus family name → the largest value of its samples (histograms: ``_count``)."""
    peaks: dict[str, float] = {}
    for family in text_string_to_metric_families(scrape_text(port)):
        for sample in family.samples:
            if not sample.name.startswith("awa_"):
                continue
            if family.type == "histogram":
                if not sample.name.endswith("_count"):
                    continue
                name = sample.name.removesuffix("_count")
            elif family.type == "counter":
                if not sample.name.endswith("_total"):
                    continue  # _created, when an exporter adds it
                name = sample.name
            else:
                name = sample.name
            peaks[name] = max(peaks.get(name, 0.0), abs(sample.value))
    return peaks
