"""``configure()``: install the OpenTelemetry SDK with OTLP and/or Prometheus export.

Library code only records through the API (``awa.telemetry.instruments``); a worker
service, or the CLI, calls ``configure`` once at start-up to make those records go
somewhere::

    telemetry = awa.telemetry.configure(service_name="billing-worker", prometheus_port=9464)
    try:
        ...  # run the Runtime
    finally:
        telemetry.shutdown()  # flushes the last metrics and spans

OTLP follows the standard environment variables, so deployments configure it the same way
as every other OpenTelemetry service: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the per-signal
``..._METRICS_ENDPOINT`` / ``..._TRACES_ENDPOINT``), ``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/protobuf``, the default, or ``grpc``; per-signal
``..._METRICS_PROTOCOL`` / ``..._TRACES_PROTOCOL`` win), ``OTEL_METRIC_EXPORT_INTERVAL``,
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``.

Calling it twice (documented behaviour): with ``set_global=True`` (the default) there is one
pipeline per process. A second call with the *same* options returns the running handle
(no-op, like ``Runtime.start()``); different options raise ``ConfigError`` naming the
difference. After ``shutdown()`` a new global pipeline cannot be installed (OpenTelemetry
lets a process set its global providers once): configure with ``set_global=False`` and pass
``handle.instruments`` to ``awa.Client(metrics=...)`` instead. ``set_global=False`` handles
are independent and may coexist (tests use them).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Self

from opentelemetry import metrics, trace

from awa.errors import ConfigError
from awa.telemetry.extras import require
from awa.telemetry.instrumentation import Instruments, instruments

if TYPE_CHECKING:
    # The SDK is imported only when configure() runs: library code (and ``import awa``)
    # stays on the API, which is lighter and leaves the SDK choice to the application.
    from wsgiref.simple_server import WSGIServer

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["PROTOCOLS", "Telemetry", "configure"]

PROTOCOLS = ("http/protobuf", "grpc")
"""OTLP transports awa can set up (``http/json`` has no Python exporter)."""

_DEFAULT_SERVICE = "awa"


@dataclasses.dataclass(frozen=True)
class _Options:
    service_name: str | None
    otlp: bool | None
    otlp_protocol: str | None
    prometheus_port: int | None
    prometheus_host: str
    traces: bool
    export_interval: float | None
    resource_attributes: tuple[tuple[str, str], ...]


class Telemetry:
    """A running SDK pipeline. ``shutdown()`` flushes and stops it (idempotent); also a
    context manager.

    - ``instruments``: record through these (the global ones when installed globally).
    - ``meter_provider`` / ``tracer_provider``: the SDK objects (``tracer_provider`` is
      ``None`` when no span exporter was set up).
    - ``otlp_metrics_protocol`` / ``otlp_traces_protocol``: the transport chosen, or
      ``None`` when that signal is not exported over OTLP.
    - ``prometheus_address``: ``(host, port)`` actually bound (useful with port 0).
    """

    def __init__(
        self,
        *,
        meter_provider: MeterProvider,
        tracer_provider: TracerProvider | None,
        instruments: Instruments,
        otlp_metrics_protocol: str | None,
        otlp_traces_protocol: str | None,
        server: WSGIServer | None,
        server_thread: threading.Thread | None,
        is_global: bool,
    ) -> None:
        self.meter_provider = meter_provider
        self.tracer_provider = tracer_provider
        self.instruments = instruments
        self.otlp_metrics_protocol = otlp_metrics_protocol
        self.otlp_traces_protocol = otlp_traces_protocol
        self.is_global = is_global
        self._server = server
        self._server_thread = server_thread
        self._lock = threading.Lock()
        self._closed = False

    @property
    def prometheus_address(self) -> tuple[str, int] | None:
        if self._server is None:
            return None
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def closed(self) -> bool:
        return self._closed

    def force_flush(self, timeout: float = 10.0) -> bool:
        """Export everything recorded so far now (blocking; OTLP only: Prometheus is
        pulled). Returns False if an exporter did not finish within ``timeout``."""
        millis = timeout * 1000
        ok = self.meter_provider.force_flush(timeout_millis=millis)
        if self.tracer_provider is not None:
            ok = self.tracer_provider.force_flush(timeout_millis=int(millis)) and ok
        return ok

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the scrape endpoint, export what is left, release exporters. Blocking; safe
        to call twice. Instruments keep working afterwards as no-ops."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._server_thread is not None:
            self._server_thread.join(timeout)
        self.meter_provider.shutdown(timeout_millis=timeout * 1000)
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        _forget(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()


_lock = threading.Lock()
_active: tuple[_Options, Telemetry] | None = None
_global_installed = False


def _forget(handle: Telemetry) -> None:
    global _active
    with _lock:
        if _active is not None and _active[1] is handle:
            _active = None


def configure(
    service_name: str | None = None,
    *,
    otlp: bool | None = None,
    otlp_protocol: str | None = None,
    prometheus_port: int | None = None,
    prometheus_host: str = "127.0.0.1",
    traces: bool = True,
    export_interval: float | None = None,
    resource_attributes: Mapping[str, str] | None = None,
    set_global: bool = True,
) -> Telemetry:
    """Set up metrics (and traces) export; returns the handle to ``shutdown()``.

    - ``service_name``: the ``service.name`` resource attribute (default
      ``OTEL_SERVICE_NAME``, else ``"awa"``).
    - ``otlp``: export over OTLP. ``None`` (default): per signal, when its endpoint
      variable (``OTEL_EXPORTER_OTLP_ENDPOINT`` or the per-signal one) is set. ``True``:
      always (exporter defaults: ``localhost:4318`` for HTTP, ``localhost:4317`` for gRPC).
    - ``otlp_protocol``: ``http/protobuf`` or ``grpc``; default from the environment,
      else ``http/protobuf``.
    - ``prometheus_port``: serve ``/metrics`` for scraping on this port (0 picks a free
      one; see ``Telemetry.prometheus_address``); ``prometheus_host`` is the bind address.
    - ``traces``: also export spans over OTLP (job executions, maintenance ticks).
    - ``export_interval``: seconds between OTLP metric exports (default
      ``OTEL_METRIC_EXPORT_INTERVAL``, else 60 s).
    - ``resource_attributes``: extra resource attributes (``deployment.environment``, …).
    - ``set_global``: install the providers globally so ``awa.telemetry.instruments()``
      (what every ``Client`` uses by default) and third-party instrumentation record into
      them. See the module docstring for calling this twice.
    """
    require("opentelemetry.sdk", "awa.telemetry.configure")
    options = _Options(
        service_name,
        otlp,
        otlp_protocol,
        prometheus_port,
        prometheus_host,
        traces,
        export_interval,
        tuple(sorted((resource_attributes or {}).items())),
    )
    if not set_global:
        return _build(options, is_global=False)
    global _active, _global_installed
    with _lock:
        if _active is not None:
            running, handle = _active
            if running == options:
                return handle
            raise ConfigError(
                "awa.telemetry is already configured with different options "
                f"({_difference(running, options)}): call shutdown() on the first handle "
                "or pass the same options"
            )
        if _global_installed:
            raise ConfigError(
                "awa.telemetry was configured globally before and shut down; OpenTelemetry "
                "sets global providers once per process: use configure(set_global=False) "
                "and pass handle.instruments to awa.Client(metrics=...)"
            )
        tracing = options.traces and _otlp_protocol("TRACES", options) is not None
        _refuse_foreign_providers(tracing=tracing)
        handle = _build(options, is_global=True)
        metrics.set_meter_provider(handle.meter_provider)
        if handle.tracer_provider is not None:
            trace.set_tracer_provider(handle.tracer_provider)
        _global_installed = True
        _active = (options, handle)
        return handle


def _refuse_foreign_providers(*, tracing: bool) -> None:
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

    if isinstance(metrics.get_meter_provider(), SdkMeterProvider):
        raise ConfigError(
            "a global OpenTelemetry MeterProvider is already installed (by your code or "
            "opentelemetry-instrument); awa records into it already: do not call configure(), "
            "or pass set_global=False"
        )
    if tracing and isinstance(trace.get_tracer_provider(), SdkTracerProvider):
        raise ConfigError(
            "a global OpenTelemetry TracerProvider is already installed; awa's spans go to it "
            "already: pass traces=False to keep it"
        )


def _difference(a: _Options, b: _Options) -> str:
    changed = [
        f"{f.name}: {getattr(a, f.name)!r} → {getattr(b, f.name)!r}"
        for f in dataclasses.fields(a)
        if getattr(a, f.name) != getattr(b, f.name)
    ]
    return "; ".join(changed)


def _build(options: _Options, *, is_global: bool) -> Telemetry:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    resource = _resource(options)
    metric_protocol = _otlp_protocol("METRICS", options)
    trace_protocol = _otlp_protocol("TRACES", options) if options.traces else None
    readers: list[MetricReader] = []
    server: WSGIServer | None = None
    thread: threading.Thread | None = None
    if options.prometheus_port is not None:
        reader, server, thread = _prometheus(options.prometheus_host, options.prometheus_port)
        readers.append(reader)
    try:
        if metric_protocol is not None:
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            interval = None if options.export_interval is None else options.export_interval * 1e3
            exporter = _metric_exporter(metric_protocol)
            readers.append(PeriodicExportingMetricReader(exporter, export_interval_millis=interval))
        meter_provider = MeterProvider(metric_readers=readers, resource=resource)
        tracer_provider: TracerProvider | None = None
        if trace_protocol is not None:
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            tracer_provider = TracerProvider(resource=resource)
            tracer_provider.add_span_processor(BatchSpanProcessor(_span_exporter(trace_protocol)))
    except BaseException:
        if server is not None:
            server.shutdown()
            server.server_close()
        raise
    bound = (
        instruments() if is_global else Instruments(meter_provider, tracer_provider=tracer_provider)
    )
    return Telemetry(
        meter_provider=meter_provider,
        tracer_provider=tracer_provider,
        instruments=bound,
        otlp_metrics_protocol=metric_protocol,
        otlp_traces_protocol=trace_protocol,
        server=server,
        server_thread=thread,
        is_global=is_global,
    )


def _resource(options: _Options) -> Resource:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    attributes: dict[str, str] = dict(options.resource_attributes)
    if options.service_name is not None:
        attributes[SERVICE_NAME] = options.service_name
    elif not os.environ.get("OTEL_SERVICE_NAME"):
        attributes.setdefault(SERVICE_NAME, _DEFAULT_SERVICE)
    return Resource.create(attributes)


def _otlp_protocol(signal: str, options: _Options) -> str | None:
    """The transport for ``signal`` (METRICS or TRACES), or None when it is not exported."""
    if options.otlp is False:
        return None
    if options.otlp is None and not (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
    ):
        return None
    protocol = (
        options.otlp_protocol
        or os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol not in PROTOCOLS:
        raise ConfigError(
            f"unsupported OTLP protocol {protocol!r} for {signal.lower()}: "
            f"expected one of {', '.join(PROTOCOLS)}"
        )
    return protocol


_OTLP_MODULES = {
    "grpc": "opentelemetry.exporter.otlp.proto.grpc",
    "http/protobuf": "opentelemetry.exporter.otlp.proto.http",
}


def _metric_exporter(protocol: str) -> MetricExporter:
    # Imported here: the gRPC stack is heavy and only needed when chosen.
    require(_OTLP_MODULES[protocol], f"OTLP export over {protocol}")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        return GrpcMetricExporter()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )

    return HttpMetricExporter()


def _span_exporter(protocol: str) -> SpanExporter:
    require(_OTLP_MODULES[protocol], f"OTLP export over {protocol}")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter()


def _prometheus(host: str, port: int) -> tuple[MetricReader, WSGIServer, threading.Thread]:
    """A Prometheus reader on a private registry (so several pipelines, or a test run,
    never collide in prometheus_client's global one) and its HTTP server."""
    require("opentelemetry.exporter.prometheus", "Prometheus metrics")
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    reader = PrometheusMetricReader(registry=registry)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        reader.shutdown()
        raise ConfigError(f"cannot serve Prometheus metrics on {host}:{port}: {exc}") from exc
    return reader, server, thread
