"""The job model: states, the stored job, insert parameters, callbacks, and the markers
that stand in for stored values Python cannot read.

Validation of everything a producer passes happens here (with the checks in
``awa.validation``), before any SQL runs, so a bad call raises a typed ``ValidationError``
naming the field and no partial row can exist. Handler outcomes (``Snooze``, ``Cancel``...)
live in ``awa.outcomes``.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import inspect
import itertools
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypedDict

from awa.errors import ValidationError
from awa.validation import check_aware, check_int, check_text, encode_json, to_seconds, valid_utf8

__all__ = [
    "CALLBACK_METADATA_KEY",
    "MAX_KIND_LENGTH",
    "MAX_PRIORITY",
    "MAX_QUEUE_LENGTH",
    "MIN_PRIORITY",
    "TERMINAL_STATES",
    "BatchOptions",
    "Callback",
    "CallbackResult",
    "InsertOptions",
    "InsertParams",
    "Job",
    "JobState",
    "UndecodableJson",
    "UniqueScope",
    "UnreadableMetadata",
    "hash_callback_token",
    "new_callback_token",
    "parse_state",
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


# ------------------------------------------------------------------- unreadable stored values


@dataclass(frozen=True, slots=True, repr=False)
class UndecodableJson:
    """Stands in for a stored json/jsonb value that PostgreSQL accepted but Python cannot
    turn into objects (nesting past the recursion limit, text that is not JSON or UTF-8).

    Decoding never raises: one such value (written by another producer) must not abort the
    query that reads it, which for a claim would kill the runtime and strand the whole
    batch in 'running'. The runtime fails a job whose args or metadata are this marker
    instead of running it; readers (``get_job``, the CLI, dashboards) show its repr.
    Made by ``awa.db.connect.decode_json``; a model type because handlers and readers meet it.
    """

    reason: str
    size: int  #: length of the JSON text, in characters

    def __repr__(self) -> str:
        return f"<undecodable JSON: {self.reason} ({self.size} characters)>"

    __str__ = __repr__


class UnreadableMetadata(dict[str, Any]):
    """Empty metadata standing in for a stored value that is not a JSON object or cannot be
    decoded; ``reason`` says what was stored. Made by ``awa.store.rows``."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason

    def __repr__(self) -> str:
        return f"<unreadable metadata: {self.reason}>"


class _AcceptedNames(set[str]):
    """Kinds or queues ``check_text`` already accepted, so the bulk path checks each
    distinct name once rather than once per job (~0.4 µs per job for the two). Only exact
    ``str`` values are remembered (a subclass could compare equal to a valid name while
    being something else); bounded, so names made up per job cannot grow it forever."""

    LIMIT = 4096

    def remember(self, name: str) -> None:
        if name.__class__ is str:
            if len(self) >= self.LIMIT:
                self.clear()
            self.add(name)


_ACCEPTED_KINDS = _AcceptedNames()
_ACCEPTED_QUEUES = _AcceptedNames()


class BatchOptions(TypedDict, total=False):
    """The options every job of a ``Client.insert_batch`` shares: ``InsertOptions`` but a
    unique key, which belongs to one job."""

    queue: str | None
    priority: int
    run_at: datetime | None
    delay: float | timedelta | None
    max_attempts: int
    tags: Sequence[str]
    metadata: Mapping[str, Any] | None
    timeout: float | timedelta | None


class InsertOptions(BatchOptions, total=False):
    """The options of ``Client.insert`` (and ``SyncClient.insert``) as one typed set, so
    ``mypy`` catches a misspelt option (``priorty=1``) instead of it reaching ``**kwargs``.
    Meanings: ``Client.params``."""

    unique_key: str | None
    unique_scope: UniqueScope | str


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
        # A batch repeats a few kinds and queues: each distinct one is checked once.
        if kind.__class__ is not str or kind not in _ACCEPTED_KINDS:
            _ACCEPTED_KINDS.remember(check_text("kind", kind, MAX_KIND_LENGTH))
        if queue.__class__ is not str or queue not in _ACCEPTED_QUEUES:
            _ACCEPTED_QUEUES.remember(check_text("queue", queue, MAX_QUEUE_LENGTH))
        if priority.__class__ is not int or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
            check_int("priority", priority, MIN_PRIORITY, MAX_PRIORITY)
        if max_attempts.__class__ is not int or not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT:
            check_int("max_attempts", max_attempts, 1, MAX_ATTEMPTS_LIMIT)
        if run_at is not None:
            check_aware("run_at", run_at)
        # An exact tuple or list (the common cases) skips the ABC check; an empty one, the scan.
        if (tags.__class__ is not tuple and tags.__class__ is not list) or tags:
            if isinstance(tags, str | bytes) or not isinstance(tags, Sequence):
                raise ValidationError("tags", tags, "expected a list of non-empty strings")
            if not all(
                isinstance(t, str) and t and "\x00" not in t and valid_utf8(t) for t in tags
            ):
                raise ValidationError("tags", tags, "expected a list of non-empty strings")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ValidationError("metadata", metadata, "expected a JSON object (mapping)")
        if timeout is not None:
            timeout = to_seconds("timeout", timeout)
        if unique_key is not None:
            check_text("unique_key", unique_key, 1000)
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
