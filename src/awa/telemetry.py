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

Maintenance (attributes ``awa.maintenance.lane``, ``awa.maintenance.branch``):

- ``awa.maintenance.branch.duration`` — histogram — ``s``: body wall-clock time
- ``awa.maintenance.branch.lateness`` — histogram — ``s``: start time minus due time
- ``awa.maintenance.branch.overrun`` — counter — ``{episode}``: on-time→delayed episodes
  (Prometheus: ``awa_maintenance_branch_overrun_total``)
- ``awa.maintenance.branch.errors`` — counter — ``{error}`` — plus ``error.type``
- ``awa.maintenance.branch.rows`` — counter — ``{row}`` — plus ``awa.maintenance.action``
- ``awa.maintenance.elections`` — counter — ``{election}``: leadership won by this process
- ``awa.maintenance.leader`` — up-down counter — ``{leader}``: 1 while this process leads
"""

from __future__ import annotations

from typing import Final

from opentelemetry import metrics

__all__ = [
    "BRANCH_DURATION",
    "BRANCH_ERRORS",
    "BRANCH_LATENESS",
    "BRANCH_OVERRUN",
    "BRANCH_ROWS",
    "ELECTIONS",
    "FLUSH_ERRORS",
    "HANDLER_DURATION",
    "JOBS_CLAIMED",
    "JOBS_FINISHED",
    "JOBS_INSERTED",
    "JOBS_STALE_RESULTS",
    "LEADER",
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
BRANCH_DURATION: Final = "awa.maintenance.branch.duration"
BRANCH_LATENESS: Final = "awa.maintenance.branch.lateness"
BRANCH_OVERRUN: Final = "awa.maintenance.branch.overrun"
BRANCH_ERRORS: Final = "awa.maintenance.branch.errors"
BRANCH_ROWS: Final = "awa.maintenance.branch.rows"
ELECTIONS: Final = "awa.maintenance.elections"
LEADER: Final = "awa.maintenance.leader"


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
        self.branch_duration = meter.create_histogram(BRANCH_DURATION, unit="s")
        self.branch_lateness = meter.create_histogram(BRANCH_LATENESS, unit="s")
        self.branch_overrun = meter.create_counter(BRANCH_OVERRUN, unit="{episode}")
        self.branch_errors = meter.create_counter(BRANCH_ERRORS, unit="{error}")
        self.branch_rows = meter.create_counter(BRANCH_ROWS, unit="{row}")
        self.elections = meter.create_counter(ELECTIONS, unit="{election}")
        self.leader = meter.create_up_down_counter(LEADER, unit="{leader}")


_default: Instruments | None = None


def instruments() -> Instruments:
    """Instruments bound to the global MeterProvider (created on first use)."""
    global _default
    if _default is None:
        _default = Instruments()
    return _default
