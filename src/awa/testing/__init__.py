"""Test helpers for applications that use awa (Oban's ``perform_job``, River's
``rivertest``): run a handler without a runtime, and assert what was enqueued.

- ``await perform(client, "kind", args, ...)`` runs the registered handler once, in memory,
  and returns what the worker would record (``Completed``, ``Retried``, ``Failed``,
  ``Snoozed``, ``Cancelled``, ``Parked``), judged by the worker's own code.
- ``await enqueued_jobs(client_or_conn, kind=..., queue=..., args=...)``,
  ``assert_enqueued(...)`` and ``refute_enqueued(...)`` read the real database.
- ``pytest_plugins = ["awa.testing.pytest_plugin"]`` gives the ``awa_database_url`` fixture:
  a fresh migrated database per test on one embedded PostgreSQL per session.

Importing this package does not import pytest; only the plugin module does.
"""

from awa.testing.enqueued import QUEUED_STATES, assert_enqueued, enqueued_jobs, refute_enqueued
from awa.testing.perform import perform
from awa.testing.results import (
    Cancelled,
    Completed,
    Failed,
    Parked,
    Performed,
    PerformResult,
    Retried,
    Snoozed,
)

__all__ = [
    "QUEUED_STATES",
    "Cancelled",
    "Completed",
    "Failed",
    "Parked",
    "PerformResult",
    "Performed",
    "Retried",
    "Snoozed",
    "assert_enqueued",
    "enqueued_jobs",
    "perform",
    "refute_enqueued",
]
