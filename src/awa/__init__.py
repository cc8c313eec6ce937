"""awa: a pure-Python, asyncio-native, Postgres-native background job runtime.

The public surface is what this module exports; ``tests/test_public_api.py`` keeps the list
honest.
"""

from awa.backoff import Backoff as Backoff
from awa.client import Client as Client
from awa.clock import Clock as Clock
from awa.clock import FakeClock as FakeClock
from awa.clock import SystemClock as SystemClock
from awa.config import RuntimeConfig as RuntimeConfig
from awa.errors import AwaError as AwaError
from awa.errors import ConfigError as ConfigError
from awa.errors import DatabaseUnavailable as DatabaseUnavailable
from awa.errors import InvalidTransition as InvalidTransition
from awa.errors import JobNotFound as JobNotFound
from awa.errors import MigrationError as MigrationError
from awa.errors import RuntimeStateError as RuntimeStateError
from awa.errors import ValidationError as ValidationError
from awa.events import CallableSink as CallableSink
from awa.events import Event as Event
from awa.events import EventRejected as EventRejected
from awa.events import SinkUnavailable as SinkUnavailable
from awa.events import WebhookSink as WebhookSink
from awa.events import verify_signature as verify_signature
from awa.handlers import JobContext as JobContext
from awa.model import Cancel as Cancel
from awa.model import InsertParams as InsertParams
from awa.model import Job as Job
from awa.model import JobState as JobState
from awa.model import RetryAfter as RetryAfter
from awa.model import Snooze as Snooze
from awa.model import UniqueScope as UniqueScope
from awa.runtime import Runtime as Runtime

__all__ = (
    "AwaError",
    "Backoff",
    "CallableSink",
    "Cancel",
    "Client",
    "Clock",
    "ConfigError",
    "DatabaseUnavailable",
    "Event",
    "EventRejected",
    "FakeClock",
    "InsertParams",
    "InvalidTransition",
    "Job",
    "JobContext",
    "JobNotFound",
    "JobState",
    "MigrationError",
    "RetryAfter",
    "Runtime",
    "RuntimeConfig",
    "RuntimeStateError",
    "SinkUnavailable",
    "Snooze",
    "SystemClock",
    "UniqueScope",
    "ValidationError",
    "WebhookSink",
    "verify_signature",
)
