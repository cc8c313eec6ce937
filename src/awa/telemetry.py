"""Metric names, units and instruments: the one module that imports OpenTelemetry.

Library code records through the OpenTelemetry *API* only; without a configured SDK every
instrument is a no-op. ``awa.telemetry.configure`` (CLI side) installs the SDK.

Catalogue (name — instrument — unit — attributes):

- ``awa.jobs.inserted`` — counter — ``{job}`` — ``awa.queue``
- ``awa.jobs.claimed`` — counter — ``{job}`` — ``awa.queue``
- ``awa.jobs.finished`` — counter — ``{job}`` — ``awa.queue``, ``awa.outcome``
  (completed, retried, failed, cancelled, snoozed, lost)
- ``awa.jobs.stale_results`` — counter — ``{job}`` — results rejected because the job's
  ``run_lease`` moved on (rescued or cancelled meanwhile)
- ``awa.handler.duration`` — histogram — ``s`` — ``awa.queue``, ``awa.job.kind``
- ``awa.jobs.pickup_latency`` — histogram — ``s`` — ``awa.queue``: claim time − run_at
- ``awa.flush.errors`` — counter — ``{error}`` — ``error.type``: failed completion flushes
"""

from __future__ import annotations

from typing import Final

from opentelemetry import metrics

__all__ = [
    "FLUSH_ERRORS",
    "HANDLER_DURATION",
    "JOBS_CLAIMED",
    "JOBS_FINISHED",
    "JOBS_INSERTED",
    "JOBS_STALE_RESULTS",
    "PICKUP_LATENCY",
    "Instruments",
    "instruments",
]

JOBS_INSERTED: Final = "awa.jobs.inserted"
JOBS_CLAIMED: Final = "awa.jobs.claimed"
JOBS_FINISHED: Final = "awa.jobs.finished"
JOBS_STALE_RESULTS: Final = "awa.jobs.stale_results"
HANDLER_DURATION: Final = "awa.handler.duration"
PICKUP_LATENCY: Final = "awa.jobs.pickup_latency"
FLUSH_ERRORS: Final = "awa.flush.errors"


class Instruments:
    """The runtime's instruments, created from whatever MeterProvider is current."""

    def __init__(self, provider: metrics.MeterProvider | None = None) -> None:
        meter = (provider or metrics.get_meter_provider()).get_meter("awa")
        self.inserted = meter.create_counter(JOBS_INSERTED, unit="{job}")
        self.claimed = meter.create_counter(JOBS_CLAIMED, unit="{job}")
        self.finished = meter.create_counter(JOBS_FINISHED, unit="{job}")
        self.stale_results = meter.create_counter(JOBS_STALE_RESULTS, unit="{job}")
        self.handler_duration = meter.create_histogram(HANDLER_DURATION, unit="s")
        self.pickup_latency = meter.create_histogram(PICKUP_LATENCY, unit="s")
        self.flush_errors = meter.create_counter(FLUSH_ERRORS, unit="{error}")


_default: Instruments | None = None


def instruments() -> Instruments:
    """Instruments bound to the global MeterProvider (created on first use)."""
    global _default
    if _default is None:
        _default = Instruments()
    return _default
