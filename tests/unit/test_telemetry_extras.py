"""Telemetry without its extras: ``configure`` names the extra to install (a producer's
install has no OpenTelemetry SDK or exporter), rather than an ImportError from inside it."""

from __future__ import annotations

import sys

import pytest

from awa.errors import ConfigError
from awa.telemetry import configure
from awa.telemetry.extras import require


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("opentelemetry.sdk", "otlp-http"),
        ("opentelemetry.exporter.prometheus", "prometheus"),
        ("opentelemetry.exporter.otlp.proto.grpc", "otlp-grpc"),
    ],
)
def test_a_missing_module_names_its_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what an install without it gives
    with pytest.raises(ConfigError, match=rf"pip install 'awa-py\[{extra}\]'"):
        require(module, "this export")


def test_configure_without_the_sdk_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk", None)
    with pytest.raises(ConfigError, match=r"awa\.telemetry\.configure needs opentelemetry\.sdk"):
        configure(service_name="x", set_global=False)
