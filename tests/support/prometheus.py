"""A real Prometheus scrape of awa's exporter, for tests that prove a metric by reading it
after the real event (``awa.telemetry.configure`` with ``prometheus_port=0`` on loopback)."""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator

import anyio
import anyio.to_thread
from prometheus_client.parser import text_string_to_metric_families

from awa.telemetry import Telemetry, configure

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SCOPE = {"otel_scope_name", "otel_scope_version", "otel_scope_schema_url"}


async def exporting(service: str) -> AsyncIterator[Telemetry]:
    """An exporter on an ephemeral loopback port, shut down afterwards (fixture body)."""
    handle = configure(
        service, otlp=False, prometheus_port=0, prometheus_host="127.0.0.1", set_global=False
    )
    try:
        yield handle
    finally:
        await anyio.to_thread.run_sync(handle.shutdown)


async def scrape(handle: Telemetry) -> Samples:
    """Every ``awa_*`` sample of one real scrape: (name, labels without scope) → value."""
    address = handle.prometheus_address
    assert address is not None

    def fetch() -> str:
        url = f"http://127.0.0.1:{address[1]}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())

    text = await anyio.to_thread.run_sync(fetch)
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("awa_"):
                labels = frozenset((k, v) for k, v in sample.labels.items() if k not in SCOPE)
                samples[(sample.name, labels)] = sample.value
    return samples


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())
