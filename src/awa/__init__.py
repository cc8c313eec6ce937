"""awa: a pure-Python, asyncio-native, Postgres-native background job runtime.

The public surface is what this module exports; ``tests/test_quality.py`` keeps the list
honest.
"""

from awa.backoff import Backoff as Backoff
from awa.callbacks import Callbacks as Callbacks
from awa.client import Client as Client
from awa.clock import Clock as Clock
from awa.clock import FakeClock as FakeClock
from awa.clock import SystemClock as SystemClock
from awa.config import RuntimeConfig as RuntimeConfig
from awa.db.embedded import embedded as embedded
from awa.errors import AwaError as AwaError
from awa.errors import CallbackAlreadyResolved as CallbackAlreadyResolved
from awa.errors import CallbackError as CallbackError
from awa.errors import CallbackExpired as CallbackExpired
from awa.errors import CallbackNotFound as CallbackNotFound
from awa.errors import CallbackTokenInvalid as CallbackTokenInvalid
from awa.errors import ConfigError as ConfigError
from awa.errors import DatabaseConflict as DatabaseConflict
from awa.errors import DatabaseUnavailable as DatabaseUnavailable
from awa.errors import HttpWorkerError as HttpWorkerError
from awa.errors import InvalidTransition as InvalidTransition
from awa.errors import JobNotFound as JobNotFound
from awa.errors import MigrationError as MigrationError
from awa.errors import PoolExhausted as PoolExhausted
from awa.errors import RuntimeStateError as RuntimeStateError
from awa.errors import StartupRecoveryError as StartupRecoveryError
from awa.errors import SyncCallTimeout as SyncCallTimeout
from awa.errors import SyncClientClosed as SyncClientClosed
from awa.errors import ValidationError as ValidationError
from awa.errors import WorkerCrashLoop as WorkerCrashLoop
from awa.events import CallableSink as CallableSink
from awa.events import Event as Event
from awa.events import EventRejected as EventRejected
from awa.events import SinkUnavailable as SinkUnavailable
from awa.events import WebhookSink as WebhookSink
from awa.events import verify_signature as verify_signature
from awa.handlers import JobContext as JobContext
from awa.http_worker import http_worker as http_worker
from awa.model import BatchOptions as BatchOptions
from awa.model import Callback as Callback
from awa.model import CallbackResult as CallbackResult
from awa.model import InsertOptions as InsertOptions
from awa.model import InsertParams as InsertParams
from awa.model import Job as Job
from awa.model import JobState as JobState
from awa.model import UndecodableJson as UndecodableJson
from awa.model import UniqueScope as UniqueScope
from awa.model import UnreadableMetadata as UnreadableMetadata
from awa.outcomes import Cancel as Cancel
from awa.outcomes import RetryAfter as RetryAfter
from awa.outcomes import Snooze as Snooze
from awa.outcomes import WaitForCallback as WaitForCallback
from awa.runtime import Runtime as Runtime
from awa.runtime.processes import run_processes as run_processes
from awa.sync import SyncClient as SyncClient

__all__ = (
    "AwaError",
    "Backoff",
    "BatchOptions",
    "CallableSink",
    "Callback",
    "CallbackAlreadyResolved",
    "CallbackError",
    "CallbackExpired",
    "CallbackNotFound",
    "CallbackResult",
    "CallbackTokenInvalid",
    "Callbacks",
    "Cancel",
    "Client",
    "Clock",
    "ConfigError",
    "DatabaseConflict",
    "DatabaseUnavailable",
    "Event",
    "EventRejected",
    "FakeClock",
    "HttpWorkerError",
    "InsertOptions",
    "InsertParams",
    "InvalidTransition",
    "Job",
    "JobContext",
    "JobNotFound",
    "JobState",
    "MigrationError",
    "PoolExhausted",
    "RetryAfter",
    "Runtime",
    "RuntimeConfig",
    "RuntimeStateError",
    "SinkUnavailable",
    "Snooze",
    "StartupRecoveryError",
    "SyncCallTimeout",
    "SyncClient",
    "SyncClientClosed",
    "SystemClock",
    "UndecodableJson",
    "UniqueScope",
    "UnreadableMetadata",
    "ValidationError",
    "WaitForCallback",
    "WebhookSink",
    "WorkerCrashLoop",
    "embedded",
    "http_worker",
    "run_processes",
    "verify_signature",
)
