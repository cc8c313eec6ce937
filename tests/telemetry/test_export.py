"""``awa.telemetry.configure``: OTLP and Prometheus export, end to end over real sockets.

Acceptance (issue 7): a real Runtime with an induced overrun exports over OTLP/HTTP to a
receiver on loopback (a tiny HTTP server here that decodes the protobuf
``ExportMetricsServiceRequest`` with the ``opentelemetry-proto`` classes) and the overrun
counter and branch histograms arrive; another run is scraped over HTTP and
``awa_maintenance_branch_overrun_total{…}`` is there. The gRPC transport, the environment
variables, and calling ``configure`` twice are covered too.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import anyio.to_thread
import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

import awa
from awa.config import MaintenanceConfig
from awa.maintenance import HYGIENE, Branch, BranchContext, BranchResult
from awa.telemetry import Instruments, Telemetry, configure

SLOW_INTERVAL = 0.05
SLOW_BODY = 8 * SLOW_INTERVAL
OTLP_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
)


class Slow(Branch):
    name = "slow"
    lane = HYGIENE

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        await anyio.sleep(SLOW_BODY)
        return BranchResult({"slept": 1})


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTLP setting from the machine running the tests may leak in."""
    for name in OTLP_VARIABLES:
        monkeypatch.delenv(name, raising=False)


async def run_overrun_workload(url: str, instruments: Instruments) -> None:
    """A Runtime whose user hygiene branch overruns, plus one job; returns after the first
    overrun episode and the job are done (the runtime is shut down)."""
    client = awa.Client(url, metrics=instruments)
    done = anyio.Event()

    @client.handler("ping")
    async def ping(ctx: awa.JobContext) -> None:
        done.set()

    maintenance = MaintenanceConfig(
        mode="split", startup_jitter=0, election_interval=0.2, leader_check_interval=0.2
    )
    async with client:
        runtime = awa.Runtime(
            client,
            awa.RuntimeConfig(queues={"default": 2}),
            maintenance=maintenance,
            branches=[Slow(interval=SLOW_INTERVAL)],
        )
        async with runtime:
            leader = runtime.leader
            assert leader is not None
            await client.insert("ping", {})
            with anyio.fail_after(30):
                await done.wait()
                while True:  # the tracker is plain state: poll it
                    slow = leader.stats.get("slow")
                    if slow is not None and slow.tracker.episodes >= 1:
                        break
                    await anyio.sleep(0.05)


# --------------------------------------------------------------------- OTLP receivers


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class OtlpHttpReceiver:
    """A loopback OTLP/HTTP collector: records every POST, answers 200."""

    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def bodies(self, path: str) -> list[bytes]:
        return [r.body for r in self.requests if r.path == path]


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpHttpReceiver]:
    received: list[Received] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            received.append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            if self.path == "/v1/metrics":
                answer = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
            else:
                answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield OtlpHttpReceiver(server, received)
    server.shutdown()
    server.server_close()
    thread.join(5)


def decoded_metrics(bodies: list[bytes]) -> dict[str, list[metrics_pb2.Metric]]:
    """Metric name → every occurrence in the exported requests (cumulative: take the last)."""
    out: dict[str, list[metrics_pb2.Metric]] = {}
    for body in bodies:
        request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    out.setdefault(metric.name, []).append(metric)
    return out


def attributes(point: Any) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in point.attributes}


def resource_attributes(body: bytes) -> dict[str, str]:
    request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
    return {kv.key: kv.value.string_value for kv in request.resource_metrics[0].resource.attributes}


async def shutdown(handle: Telemetry) -> None:
    """``shutdown`` blocks on the final export: keep it off the event loop."""
    await anyio.to_thread.run_sync(handle.shutdown)


# ------------------------------------------------------------------------ acceptance


async def test_otlp_http_export_reaches_a_loopback_receiver(
    database_url: str, otlp_receiver: OtlpHttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-awa-test=acceptance")
    handle = configure("awa-e2e", set_global=False, export_interval=3600)
    assert handle.otlp_metrics_protocol == "http/protobuf"
    assert handle.otlp_traces_protocol == "http/protobuf"
    try:
        await run_overrun_workload(database_url, handle.instruments)
    finally:
        await shutdown(handle)

    bodies = otlp_receiver.bodies("/v1/metrics")
    assert bodies, f"no metrics export arrived: {[r.path for r in otlp_receiver.requests]}"
    request = next(r for r in otlp_receiver.requests if r.path == "/v1/metrics")
    assert request.headers["content-type"] == "application/x-protobuf"
    assert request.headers["x-awa-test"] == "acceptance"
    assert resource_attributes(bodies[-1])["service.name"] == "awa-e2e"
    exported = decoded_metrics(bodies)

    overrun = exported["awa.maintenance.branch.overrun"][-1]
    assert overrun.unit == "{episode}"
    assert overrun.sum.is_monotonic
    slow = {"awa.maintenance.lane": "hygiene", "awa.maintenance.branch": "slow", "branch": "slow"}
    (point,) = [p for p in overrun.sum.data_points if attributes(p) == slow]
    assert point.as_int >= 1

    for name in ("awa.maintenance.branch.duration", "awa.maintenance.branch.lateness"):
        histogram = exported[name][-1]
        assert histogram.unit == "s"
        points = {
            attributes(p)["awa.maintenance.branch"]: p for p in histogram.histogram.data_points
        }
        assert {"slow", "promote_scheduled"} <= set(points), name
        assert points["slow"].count >= 3  # the tracker needs 3 slow samples to flip
        assert list(points["slow"].explicit_bounds)[:2] == [0.0005, 0.001]
    duration = {
        attributes(p)["awa.maintenance.branch"]: p
        for p in exported["awa.maintenance.branch.duration"][-1].histogram.data_points
    }
    assert duration["slow"].min >= SLOW_BODY * 0.9

    spans = [
        span.name
        for body in otlp_receiver.bodies("/v1/traces")
        for rs in trace_service_pb2.ExportTraceServiceRequest.FromString(body).resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]
    assert "awa.job.run" in spans


async def test_prometheus_endpoint_serves_the_overrun_counter(database_url: str) -> None:
    handle = configure(
        "awa-scrape", otlp=False, prometheus_port=0, prometheus_host="127.0.0.1", set_global=False
    )
    try:
        await run_overrun_workload(database_url, handle.instruments)
        address = handle.prometheus_address
        assert address is not None

        def fetch() -> tuple[str, str]:
            url = f"http://127.0.0.1:{address[1]}/metrics"
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.headers["Content-Type"], response.read().decode()

        content_type, text = await anyio.to_thread.run_sync(fetch)
    finally:
        await shutdown(handle)

    assert content_type.startswith("text/plain")
    overrun = [
        line for line in text.splitlines() if line.startswith("awa_maintenance_branch_overrun")
    ]
    (line,) = [x for x in overrun if 'awa_maintenance_branch="slow"' in x]
    # The other branches' series are exported at 0 from their lane's start (ADR 025).
    assert any('awa_maintenance_branch="promote_scheduled"' in x for x in overrun)
    assert {float(x.rsplit(" ", 1)[1]) for x in overrun if x != line} == {0.0}
    assert line.startswith("awa_maintenance_branch_overrun_total{")
    assert 'awa_maintenance_branch="slow"' in line
    assert 'branch="slow"' in line.replace('awa_maintenance_branch="slow"', "")
    assert 'awa_maintenance_lane="hygiene"' in line
    assert float(line.rsplit(" ", 1)[1]) >= 1
    assert "# TYPE awa_maintenance_branch_overrun_total counter" in text
    assert 'awa_maintenance_branch_duration_seconds_bucket{awa_maintenance_branch="slow"' in text
    assert 'awa_maintenance_branch_lateness_seconds_count{awa_maintenance_branch="slow"' in text
    assert "awa_maintenance_elections_total{" in text


# ------------------------------------------------------------------------ transports


async def test_otlp_grpc_protocol_exports_to_a_grpc_receiver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    received: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
    metadata: list[dict[str, str]] = []

    class Servicer(metrics_service_pb2_grpc.MetricsServiceServicer):
        def Export(
            self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: Any
        ) -> metrics_service_pb2.ExportMetricsServiceResponse:
            received.append(request)
            metadata.append(dict(context.invocation_metadata()))
            return metrics_service_pb2.ExportMetricsServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-awa-test=grpc")
        handle = configure(set_global=False, export_interval=3600)
        assert handle.otlp_metrics_protocol == "grpc"
        assert handle.otlp_traces_protocol is None  # only the metrics endpoint was given
        handle.instruments.branch_overrun.add(
            1, {"awa.maintenance.lane": "slo", "awa.maintenance.branch": "promote_scheduled"}
        )
        await shutdown(handle)
    finally:
        server.stop(None)
    names = {
        m.name
        for request in received
        for rm in request.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert "awa.maintenance.branch.overrun" in names
    assert metadata[0]["x-awa-test"] == "grpc"
    service = {
        kv.key: kv.value.string_value for kv in received[0].resource_metrics[0].resource.attributes
    }
    assert service["service.name"] == "awa"


def test_no_endpoint_means_no_otlp_unless_forced() -> None:
    with configure(set_global=False) as handle:
        assert handle.otlp_metrics_protocol is None
        assert handle.otlp_traces_protocol is None
        assert handle.tracer_provider is None
        assert handle.prometheus_address is None
    with configure(set_global=False, otlp=True, traces=False) as forced:
        assert forced.otlp_metrics_protocol == "http/protobuf"
        assert forced.otlp_traces_protocol is None


def test_unsupported_protocol_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(awa.ConfigError, match=r"unsupported OTLP protocol 'http/json'"):
        configure(set_global=False)


def test_busy_prometheus_port_is_a_clear_config_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(awa.ConfigError, match=rf"cannot serve Prometheus metrics on .*:{port}"):
            configure(prometheus_port=port, prometheus_host="127.0.0.1", set_global=False)


def test_shutdown_is_idempotent_and_stops_the_endpoint() -> None:
    handle = configure(prometheus_port=0, prometheus_host="127.0.0.1", set_global=False)
    address = handle.prometheus_address
    assert address is not None
    handle.shutdown()
    handle.shutdown()
    assert handle.closed
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{address[1]}/metrics", timeout=2)


def test_global_configure_is_idempotent_and_refuses_different_options() -> None:
    """Global providers can be set once per process, so this runs in a fresh interpreter."""
    script = textwrap.dedent(
        """
        import json, urllib.request
        import awa
        from awa import telemetry

        early = telemetry.instruments()  # created before configure: must still export
        first = telemetry.configure("g", prometheus_port=0, prometheus_host="127.0.0.1")
        again = telemetry.configure("g", prometheus_port=0, prometheus_host="127.0.0.1")
        try:
            telemetry.configure("other", prometheus_port=0, prometheus_host="127.0.0.1")
            changed = "accepted"
        except awa.ConfigError as exc:
            changed = str(exc)
        early.elections.add(1)
        client = awa.Client("postgresql://localhost/x")
        port = first.prometheus_address[1]
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        first.shutdown()
        try:
            telemetry.configure("g", prometheus_port=0, prometheus_host="127.0.0.1")
            after = "accepted"
        except awa.ConfigError as exc:
            after = str(exc)
        local = telemetry.configure(set_global=False)
        local.shutdown()
        print(json.dumps({
            "same": first is again,
            "changed": changed,
            "after": after,
            "client_uses_global": client.metrics is first.instruments,
            "exported": "awa_maintenance_elections_total{" in text,
            "service": 'service_name="g"' in text,
        }))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in OTLP_VARIABLES}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["same"] is True
    assert "already configured with different options" in outcome["changed"]
    assert "service_name: 'g' → 'other'" in outcome["changed"]
    assert "set_global=False" in outcome["after"]
    assert outcome["client_uses_global"] is True
    assert outcome["exported"] is True
    assert outcome["service"] is True


def test_a_foreign_global_meter_provider_is_not_replaced() -> None:
    script = textwrap.dedent(
        """
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        import awa
        from awa import telemetry

        metrics.set_meter_provider(MeterProvider())
        try:
            telemetry.configure(prometheus_port=0, prometheus_host="127.0.0.1")
            print("accepted")
        except awa.ConfigError as exc:
            print(exc)
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in OTLP_VARIABLES}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "MeterProvider is already installed" in result.stdout
    assert "set_global=False" in result.stdout
