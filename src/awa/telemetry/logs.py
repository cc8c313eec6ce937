"""Logs a machine can read: one JSON object per line, carrying the job a line is about.

Why: an operator's log pipeline (Loki, Elasticsearch, CloudWatch) can filter and join JSON
fields, not prose. A failed attempt's line must be findable by job id, kind, queue and the
trace id its span exported, without a regular expression per message.

Two parts, both on the standard library's ``logging`` only:

- ``JobScope(job)``: the worker enters it around each handler execution; a context
  variable (per asyncio task, so concurrent jobs never mix) then tells every log record
  emitted meanwhile — awa's own and the handler's — which job it belongs to.
- ``JsonFormatter``: renders a record as one JSON object (schema in ADR 025): ``time``
  (UTC, ISO 8601), ``level``, ``logger``, ``message``; then, when known, ``job_id``,
  ``kind``, ``queue``, ``attempt``, ``trace_id``, ``span_id``; ``event`` and any other
  ``extra=`` fields a call passed (maintenance decisions use ``event``); ``exc_type`` and
  ``traceback`` when the record carries an exception.

``configure_logging`` installs it (the CLI's ``--log-format json`` / ``AWA_LOG_FORMAT``);
text stays the default, unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, TextIO

from opentelemetry import trace

from awa.errors import ConfigError
from awa.model import Job

__all__ = [
    "LOG_FORMATS",
    "JobLogContext",
    "JobScope",
    "JsonFormatter",
    "configure_logging",
    "current_job",
    "log_format_from",
]

LOG_FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ENV_LOG_FORMAT: Final = "AWA_LOG_FORMAT"


class JobLogContext:
    """The job an execution is about, as logs show it.

    Built for every execution and read only when a record is logged, so it keeps the job
    itself and reads its fields (and the producer's ``traceparent`` in its metadata) when a
    record asks: a copy of the fields up front cost ~3 µs per job on the drain."""

    __slots__ = ("job",)

    def __init__(self, job: Job) -> None:
        self.job = job

    @property
    def traceparent(self) -> str | None:
        """The producer's trace context, used when no span of our own is recording."""
        metadata = self.job.metadata
        value = metadata.get("traceparent") if isinstance(metadata, Mapping) else None
        return value if isinstance(value, str) else None

    def fields(self) -> dict[str, Any]:
        job = self.job
        out: dict[str, Any] = {
            "job_id": job.id,
            "kind": job.kind,
            "queue": job.queue,
            "attempt": job.attempt,
        }
        trace_id = _trace_id_from(self.traceparent)
        if trace_id is not None:
            out["trace_id"] = trace_id
        return out


_current: ContextVar[JobLogContext | None] = ContextVar("awa_job_log_context", default=None)


def current_job() -> JobLogContext | None:
    """The job the calling task is executing, or None outside a handler execution."""
    return _current.get()


class JobScope:
    """Make every log record of this task, until the block ends, carry this job. A plain
    class, not a generator context manager: it wraps every job execution."""

    __slots__ = ("_scope", "_token")

    def __init__(self, job: Job) -> None:
        self._scope = JobLogContext(job)
        self._token: Token[JobLogContext | None] | None = None

    def __enter__(self) -> JobLogContext:
        self._token = _current.set(self._scope)
        return self._scope

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None


def _trace_id_from(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` (``00-<32 hex>-<16 hex>-<2 hex>``), or None."""
    if traceparent is None:
        return None
    parts = traceparent.split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or parts[1] == "0" * 32:
        return None
    try:
        int(parts[1], 16)
    except ValueError:
        return None
    return parts[1].lower()


# Attributes every LogRecord has: whatever else a record carries came from ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}
_JOB_FIELDS = ("job_id", "kind", "queue", "attempt", "trace_id", "span_id")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages and tracebacks are
    escaped by JSON). Values ``json`` cannot encode are rendered with ``str``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job = _current.get()
        if job is not None:
            out.update(job.fields())
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            out["trace_id"] = format(span.trace_id, "032x")
            out["span_id"] = format(span.span_id, "016x")
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value  # extra= fields win: the call site knows best
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__qualname__
            out["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["traceback"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def log_format_from(option: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The log format: the CLI option, else ``AWA_LOG_FORMAT``, else ``text``. An unknown
    value is a ``ConfigError`` (the CLI prints it as one line)."""
    chosen = option if option is not None else environ.get(ENV_LOG_FORMAT) or "text"
    chosen = chosen.strip().lower()
    if chosen not in LOG_FORMATS:
        source = "--log-format" if option is not None else ENV_LOG_FORMAT
        raise ConfigError(f"{source} must be one of {', '.join(LOG_FORMATS)}, got {chosen!r}")
    return chosen


def configure_logging(
    log_format: str = "text", *, level: int = logging.INFO, stream: TextIO | None = None
) -> logging.Handler | None:
    """Send the root logger's records to ``stream`` (stderr) as text or JSON lines, like
    ``logging.basicConfig``: a root logger that has handlers already (the application's,
    or a test runner's) is left entirely alone. Returns the handler installed, or None."""
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    root = logging.getLogger()
    if root.handlers:
        return None
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
