"""Telemetry's optional dependencies, and the error a missing one gives.

A producer that only inserts jobs needs none of the OpenTelemetry SDK, the OTLP exporters
(the gRPC one alone is ~19 MB) or the Prometheus client: ``awa`` records through the
OpenTelemetry *API*, which is a no-op until an SDK is installed. So the SDK and each
exporter come with an extra (``pip install 'awa-py[otlp-http]'``, ``[otlp-grpc]``,
``[prometheus]``, or ``[telemetry]`` for all three), and asking for an export without its
extra is a ``ConfigError`` that names the extra to install, not an ``ImportError`` from
deep inside ``configure``.
"""

from __future__ import annotations

import importlib

from awa.errors import ConfigError

__all__ = ["EXPORTER_EXTRAS", "require"]

#: The extra that installs each optional module awa imports.
EXPORTER_EXTRAS: dict[str, str] = {
    "opentelemetry.sdk": "otlp-http",
    "opentelemetry.exporter.otlp.proto.http": "otlp-http",
    "opentelemetry.exporter.otlp.proto.grpc": "otlp-grpc",
    "opentelemetry.exporter.prometheus": "prometheus",
}


def require(module: str, purpose: str) -> None:
    """Import ``module`` (cheap when already imported) or raise a ``ConfigError`` saying
    which extra provides it."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        extra = EXPORTER_EXTRAS.get(module, "telemetry")
        raise ConfigError(
            f"{purpose} needs {module}, which is not installed: "
            f"pip install 'awa-py[{extra}]' (or 'awa-py[telemetry]' for every exporter)"
        ) from exc
