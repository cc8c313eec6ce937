"""The job model: states, the stored job, insert parameters and handler outcomes.

Validation of everything a producer passes lives here, before any SQL runs, so a bad call
raises a typed ``ValidationError`` naming the field and no partial row can exist.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import inspect
import itertools
import json
import math
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from awa.errors import ValidationError

__all__ = [
    "CALLBACK_METADATA_KEY",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "TERMINAL_STATES",
    "Callback",
    "CallbackResult",
    "Cancel",
    "InsertParams",
    "Job",
    "JobState",
    "Outcome",
    "RetryAfter",
    "Snooze",
    "UniqueScope",
    "WaitForCallback",
    "encode_json",
    "hash_callback_token",
    "new_callback_token",
    "parse_state",
    "to_seconds",
]

MIN_PRIORITY = 1  # most urgent
MAX_PRIORITY = 4  # least urgent
DEFAULT_PRIORITY = 2
MAX_ATTEMPTS_LIMIT = 1000
MAX_KIND_LENGTH = 200
MAX_QUEUE_LENGTH = 100


class JobState(enum.StrEnum):
    """Where a job is in its life. Values match the ``awa.job_state`` SQL enum."""

    SCHEDULED = "scheduled"
    AVAILABLE = "available"
    RUNNING = "running"
    WAITING_EXTERNAL = "waiting_external"
    RETRYABLE = "retryable"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})


def parse_state(value: str) -> JobState:
    """Turn user text into a ``JobState`` or raise a ``ValidationError`` listing valid names."""
    try:
        return JobState(value)
    except ValueError:
        valid = ", ".join(s.value for s in JobState)
        raise ValidationError("state", value, f"expected one of: {valid}") from None


class UniqueScope(enum.StrEnum):
    """In which states a unique key blocks another insert with the same key.

    ``queued``: scheduled, available, retryable. ``active`` (default): queued plus running and
    waiting_external. ``all``: every state, until the finished job is removed by retention.
    """

    QUEUED = "queued"
    ACTIVE = "active"
    ALL = "all"

    def states(self) -> list[str]:
        queued = [JobState.SCHEDULED, JobState.AVAILABLE, JobState.RETRYABLE]
        active = [*queued, JobState.RUNNING, JobState.WAITING_EXTERNAL]
        chosen = {"queued": queued, "active": active, "all": list(JobState)}[self.value]
        return [s.value for s in chosen]


@dataclass
class Job:
    """A job as stored. ``duplicate`` is not stored: it says an insert found this existing job
    under the same unique key instead of creating a new one."""

    id: int
    kind: str
    queue: str
    args: Any
    state: JobState
    priority: int
    attempt: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    attempted_at: datetime | None = None
    finalized_at: datetime | None = None
    heartbeat_at: datetime | None = None
    deadline_at: datetime | None = None
    timeout: float | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    progress: Any = None
    unique_key: str | None = None
    run_lease: int = 0
    claimed_by: str | None = None
    result: Any = None
    duplicate: bool = False

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (datetimes as ISO 8601) for CLIs and dashboards."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, JobState):
                value = value.value
            out[name] = value
        return out


def to_seconds(
    name: str, value: float | timedelta | None, *, allow_zero: bool = False
) -> float | None:
    """Normalise a duration given as seconds or ``timedelta``; reject negatives and NaN."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(name, value, "expected seconds (int/float) or a timedelta")
    else:
        try:
            seconds = float(value)
        except OverflowError:
            raise ValidationError(name, value, "must be a finite number of seconds") from None
    if not math.isfinite(seconds):
        raise ValidationError(name, value, "must be a finite number of seconds")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValidationError(
            name, value, "must be > 0 seconds" if not allow_zero else "must be >= 0"
        )
    if seconds > 366 * 86400 * 100:
        raise ValidationError(name, value, "must be at most 100 years")
    return seconds


# One encoder for every call: json.dumps with options builds a new one each time.
_ENCODER = json.JSONEncoder(
    allow_nan=False, ensure_ascii=False, separators=(",", ":"), sort_keys=True
)


def _c_encoder() -> Any:
    """The C encoder behind ``_ENCODER.encode``, built once (``encode`` builds one per call,
    most of its cost for a small value). Without circular-reference markers (a shared
    markers dict would be left dirty by a failed call): a cycle ends in RecursionError, and
    any failure is re-run through ``_ENCODER`` for its exact error. None when the C
    accelerator is missing or does not produce what ``_ENCODER`` does."""
    make = getattr(json.encoder, "c_make_encoder", None)
    basestring = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or basestring is None:
        return None
    try:
        encode = make(None, _ENCODER.default, basestring, None, ":", ",", True, False, False)
        sample = {"b": [1, 2.5, None, True, "é\n"], "a": {"x": -0.0}, "": ""}
        if "".join(encode(sample, 0)) != _ENCODER.encode(sample):
            return None
    except Exception:  # a different C API: use the slow path
        return None
    return encode


_encode_fast = _c_encoder()


def encode_json(name: str, value: Any) -> str:
    """Serialise ``value`` as strict JSON text PostgreSQL's ``jsonb`` will accept.

    Keys are sorted (``jsonb`` keeps its own key order anyway) because sorting is the cheap
    way to refuse objects whose keys mix strings with numbers, bools or None: JSON turns
    every key into a string, so ``{1: "a", "1": "b"}`` would silently lose a value.
    Keys of one non-string kind (``{1: "a", 2: "b"}``) cannot collide and are stored as
    strings, which is what the returned ``Job`` then shows."""
    if isinstance(value, dict) and not value:
        return "{}"  # no metadata, no args: the common case on the bulk path
    if _encode_fast is not None:
        try:
            text = "".join(_encode_fast(value, 0))
        except Exception:  # the full encoder below names the problem
            pass
        else:  # the checks below, without their errors: those come from the full path
            if (text.isascii() or _valid_utf8(text)) and (
                "\\u0000" not in text or not _ESCAPED_NUL.search(text)
            ):
                return text
    try:
        text = _ENCODER.encode(value)
        if not text.isascii():  # O(1) flag check; only non-ASCII text can hold a surrogate
            text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(name, value, "contains a lone surrogate (not valid UTF-8)") from None
    except TypeError as exc:
        if "not supported between instances" in str(exc):
            raise ValidationError(
                name,
                value,
                "object keys must be all strings, or all of one other type (JSON turns "
                "every key into a string, so mixed keys can collide)",
            ) from None
        raise ValidationError(name, value, f"not JSON-serialisable: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise ValidationError(name, value, f"not JSON-serialisable: {exc}") from None
    if "\\u0000" in text and _ESCAPED_NUL.search(text):
        raise ValidationError(name, value, "JSON text may not contain NUL (\\u0000) characters")
    return text


# An escaped NUL: "\u0000" preceded by an even number of backslashes (an odd number means
# the backslash itself was escaped and the text is a literal "\\u0000", which is fine).
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _valid_utf8(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_text(name: str, value: Any, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(name, value, "expected a non-empty string")
    if not _valid_utf8(value):
        raise ValidationError(name, value, "contains a lone surrogate (not valid UTF-8)")
    if len(value) > max_length:
        raise ValidationError(name, value, f"at most {max_length} characters")
    if "\x00" in value:
        raise ValidationError(name, value, "may not contain NUL characters")
    return value


def _check_int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(name, value, "expected an integer")
    if not low <= value <= high:
        raise ValidationError(name, value, f"expected {low}..{high}")
    return value


_MIN_UTC = datetime.min.replace(tzinfo=UTC)
_MAX_UTC = datetime.max.replace(tzinfo=UTC)


def check_aware(name: str, value: Any) -> datetime:
    """Accept only timezone-aware datetimes: a naive one has no single meaning across hosts."""
    if not isinstance(value, datetime):
        raise ValidationError(name, value, "expected a datetime")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValidationError(name, value, "naive datetime; pass a timezone-aware datetime")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValidationError(name, value, "outside years 1..9999 in UTC") from None
    if utc in (_MIN_UTC, _MAX_UTC):
        # asyncpg stores these as -infinity/infinity, which come back naive and break
        # every computation on the job.
        raise ValidationError(name, value, "datetime.min/max cannot be stored")
    return value


@dataclass(frozen=True, init=False)
class InsertParams:
    """One job to insert, validated on construction (see ``Client.insert`` for meanings)."""

    kind: str
    args: Any = None
    queue: str = "default"
    priority: int = DEFAULT_PRIORITY
    run_at: datetime | None = None
    max_attempts: int = 25
    tags: Sequence[str] = ()
    metadata: Mapping[str, Any] | None = None
    timeout: float | timedelta | None = None
    unique_key: str | None = None
    unique_scope: UniqueScope | str = UniqueScope.ACTIVE

    # Written out rather than generated: a frozen dataclass's __init__ stores each field
    # with object.__setattr__ (~1 µs per instance for these 11 fields, a sixth of the bulk
    # path's cost), this one validates locals and writes __dict__ once. Same parameters,
    # order and defaults as the fields above (checked at import, below the class).
    def __init__(
        self,
        kind: str,
        args: Any = None,
        queue: str = "default",
        priority: int = DEFAULT_PRIORITY,
        run_at: datetime | None = None,
        max_attempts: int = 25,
        tags: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
        timeout: float | timedelta | None = None,
        unique_key: str | None = None,
        unique_scope: UniqueScope | str = UniqueScope.ACTIVE,
    ) -> None:
        _check_text("kind", kind, MAX_KIND_LENGTH)
        _check_text("queue", queue, MAX_QUEUE_LENGTH)
        _check_int("priority", priority, MIN_PRIORITY, MAX_PRIORITY)
        _check_int("max_attempts", max_attempts, 1, MAX_ATTEMPTS_LIMIT)
        if run_at is not None:
            check_aware("run_at", run_at)
        # An exact tuple or list (the common cases) skips the ABC check; an empty one, the scan.
        if (tags.__class__ is not tuple and tags.__class__ is not list) or tags:
            if isinstance(tags, str | bytes) or not isinstance(tags, Sequence):
                raise ValidationError("tags", tags, "expected a list of non-empty strings")
            if not all(
                isinstance(t, str) and t and "\x00" not in t and _valid_utf8(t) for t in tags
            ):
                raise ValidationError("tags", tags, "expected a list of non-empty strings")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ValidationError("metadata", metadata, "expected a JSON object (mapping)")
        if timeout is not None:
            timeout = to_seconds("timeout", timeout)
        if unique_key is not None:
            _check_text("unique_key", unique_key, 1000)
        if unique_scope.__class__ is not UniqueScope:  # Enum() costs ~0.5 µs per job
            try:
                unique_scope = UniqueScope(unique_scope)
            except ValueError:
                valid = ", ".join(s.value for s in UniqueScope)
                raise ValidationError(
                    "unique_scope", unique_scope, f"expected one of: {valid}"
                ) from None
        args_json = encode_json("args", {} if args is None else args)
        metadata_json = "{}" if metadata is None else encode_json("metadata", dict(metadata))
        self.__dict__.update(
            kind=kind,
            args=args,
            queue=queue,
            priority=priority,
            run_at=run_at,
            max_attempts=max_attempts,
            tags=tags,
            metadata=metadata,
            timeout=timeout,
            unique_key=unique_key,
            unique_scope=unique_scope,
            _args_json=args_json,
            _metadata_json=metadata_json,
        )

    def __post_init__(self) -> None:
        """Only a dataclass *subclass*'s generated ``__init__`` calls this (ours does not):
        validate and encode the fields it stored, exactly as ``__init__`` would."""
        InsertParams.__init__(
            self, **{f.name: self.__dict__[f.name] for f in dataclasses.fields(InsertParams)}
        )

    @property
    def args_json(self) -> str:
        text: str = self.__dict__["_args_json"]  # set in __init__
        return text

    @property
    def metadata_json(self) -> str:
        text: str = self.__dict__["_metadata_json"]
        return text

    @property
    def timeout_seconds(self) -> float | None:
        return self.timeout if isinstance(self.timeout, float) else None

    @property
    def unique_states(self) -> list[str] | None:
        if self.unique_key is None:
            return None
        return UniqueScope(self.unique_scope).states()


def _check_init_matches_fields() -> None:
    """``InsertParams.__init__`` is hand-written: fail at import if it drifts from the fields."""
    parameters = list(inspect.signature(InsertParams.__init__).parameters.values())[1:]
    fields = dataclasses.fields(InsertParams)
    for parameter, f in itertools.zip_longest(parameters, fields):
        default = inspect.Parameter.empty if f is None or f.default is MISSING else f.default
        if (
            parameter is None
            or f is None
            or parameter.name != f.name
            or parameter.default != default
        ):
            raise RuntimeError(f"InsertParams.__init__ does not match its fields at {parameter}")


_check_init_matches_fields()


class Outcome(Exception):
    """Base of the non-error results a handler may return or raise."""


class Snooze(Outcome):
    """Run the job again after ``delay`` without counting this attempt."""

    def __init__(self, delay: float | timedelta) -> None:
        self.delay = to_seconds("delay", delay, allow_zero=True) or 0.0
        super().__init__(f"snooze {self.delay}s")


class RetryAfter(Outcome):
    """Count this attempt as failed and retry after exactly ``delay`` (no backoff)."""

    def __init__(self, delay: float | timedelta, reason: str = "retry requested") -> None:
        self.delay = to_seconds("delay", delay, allow_zero=True) or 0.0
        self.reason = reason
        super().__init__(f"retry after {self.delay}s: {reason}")


class Cancel(Outcome):
    """Stop the job for good: state ``cancelled``, ``reason`` recorded."""

    def __init__(self, reason: str = "cancelled by handler") -> None:
        self.reason = reason
        super().__init__(reason)


# ------------------------------------------------------------------------------ callbacks

#: Key under which a resumed attempt finds its callback's resolution in ``Job.metadata``.
CALLBACK_METADATA_KEY = "awa.callback"


def new_callback_token() -> str:
    """A fresh callback token: 256 random bits, URL-safe text."""
    return secrets.token_urlsafe(32)


def hash_callback_token(token: str) -> bytes:
    """What the database keeps instead of the token. A fast hash suffices: the token is 256
    random bits, so there is nothing to brute-force, and a leaked row resolves nothing."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class Callback:
    """A callback registered by a running attempt (``JobContext.register_callback``).

    Hand ``id`` and ``token`` to the external system; it resolves the callback with both
    (``awa.callbacks.Callbacks`` or the HTTP ingress). The token is a secret: it is kept out
    of ``repr`` so it does not end up in logs.
    """

    id: str
    token: str = field(repr=False)
    job_id: int
    run_lease: int
    timeout_at: datetime
    resume: bool


@dataclass(frozen=True)
class CallbackResult:
    """What a resumed handler finds in ``ctx.callback``: the callback that completed and the
    JSON payload it was completed with."""

    id: str
    payload: Any


class WaitForCallback(Outcome):
    """Park the job (``waiting_external``) until ``callback`` is resolved or times out.

    Return (or raise) it after registering the callback and handing it to the external
    system. The attempt ends here; what happens next is the resolution's: completion records
    the payload as the result (or runs the handler again with ``ctx.callback`` when the
    callback was registered with ``resume=True``), ``fail`` fails the job, ``retry`` counts a
    failed attempt, and a timeout is retried or failed by maintenance.
    """

    def __init__(self, callback: Callback) -> None:
        if not isinstance(callback, Callback):
            raise ValidationError(
                "callback", callback, "expected the Callback returned by ctx.register_callback"
            )
        self.callback = callback
        super().__init__(f"wait for callback {callback.id}")
