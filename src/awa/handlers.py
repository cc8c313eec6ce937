"""Handler registration and the context a handler receives.

A leaf module on purpose: the producer side (``awa.Client``, where the ``@client.handler``
decorator lives) and the worker side (which looks handlers up by kind) both need it, and the
layering forbids those two from importing each other.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, overload

from typing_extensions import TypeVar

from awa.clock import Clock
from awa.errors import ConfigError, InvalidTransition, ValidationError
from awa.model import (
    CALLBACK_METADATA_KEY,
    MAX_KIND_LENGTH,
    Callback,
    CallbackResult,
    Job,
    hash_callback_token,
    new_callback_token,
)
from awa.typed_args import ArgsCodec
from awa.validation import encode_json, to_seconds, valid_utf8

__all__ = [
    "CallbackRegistrar",
    "Handler",
    "HandlerRegistry",
    "HandlerSpec",
    "JobContext",
    "TypedHandler",
]

#: The type of ``ctx.args``: what ``args=`` registered, else ``Any`` (the stored JSON value).
#: A default makes a bare ``JobContext`` annotation mean ``JobContext[Any]``.
A = TypeVar("A", default=Any)
#: The registered args type of one ``@client.handler(kind, args=T)`` call.
T = TypeVar("T")


class CallbackRegistrar(Protocol):
    """Where ``JobContext.register_callback`` writes (``awa.store.callbacks.Callbacks``).

    A protocol so this leaf module needs no store: the runtime hands one in.
    """

    async def register_callback(
        self,
        job_id: int,
        run_lease: int,
        callback_id: uuid.UUID,
        token_hash: bytes,
        timeout: float,
        resume: bool,
        now: datetime | None = None,
    ) -> datetime | None:
        """Record the callback for this attempt; its timeout, or None if the attempt no
        longer holds the job."""
        ...


class JobContext(Generic[A]):
    """What a handler gets: the claimed ``job``, its ``args``, progress, and callbacks.

    ``args`` is the stored JSON value, or, for a handler registered with ``args=T``, that
    value rebuilt as a ``T`` (``load_args``, called by the runtime before the handler runs,
    so a mismatch fails the job instead of reaching the handler).

    Progress is kept in memory and written with the runtime's next heartbeat (one statement
    for all running jobs), so reporting progress often costs no extra round trips.

    ``callbacks`` and ``clock`` are supplied by the runtime; a context built without a
    registrar (unit tests, tools) cannot register callbacks.
    """

    __slots__ = (
        "_args",
        "_callback",
        "_callbacks",
        "_clock",
        "_codec",
        "_progress",
        "_progress_dirty",
        "job",
    )

    def __init__(
        self,
        job: Job,
        *,
        callbacks: CallbackRegistrar | None = None,
        clock: Clock | None = None,
        codec: ArgsCodec[A] | None = None,
    ) -> None:
        self.job = job
        self._codec = codec
        self._args: Any = job.args
        self._progress: Any = job.progress
        self._progress_dirty = False
        self._callbacks = callbacks
        self._clock = clock
        self._callback: Callback | None = None

    @property
    def args(self) -> A:
        args: A = self._args
        return args

    def load_args(self) -> str | None:
        """Rebuild typed args (see the class docstring); what does not fit, or None.

        Called once, before the handler: the same stored value fails the same way on every
        attempt, so the runtime fails such a job at once rather than retrying it."""
        if self._codec is None:
            return None
        try:
            self._args = self._codec.decode({} if self.job.args is None else self.job.args)
        except ValidationError as exc:
            return exc.reason  # "do not fit T: <the first problem>"
        return None

    @property
    def progress(self) -> Any:
        return self._progress

    def set_progress(self, progress: Any) -> None:
        """Record progress (any JSON value); persisted with the next heartbeat.

        The value is snapshotted now (serialised, and a copy kept): mutating the object
        afterwards changes nothing, and an object that only later becomes unserialisable
        cannot break the heartbeat of every job this runtime holds."""
        self._progress = json.loads(encode_json("progress", progress))
        self._progress_dirty = True

    def take_progress(self) -> tuple[bool, Any]:
        """(changed since last call, value): used by the heartbeat."""
        dirty, self._progress_dirty = self._progress_dirty, False
        return dirty, self._progress

    @property
    def callback(self) -> CallbackResult | None:
        """The completed callback this attempt resumes from, or None on a fresh attempt.

        Set only for the continuation of the attempt that parked with ``resume=True`` (the
        resolution is stored with that attempt's number, so a later retry starts fresh).
        """
        stored = self.job.metadata.get(CALLBACK_METADATA_KEY)
        if not isinstance(stored, dict) or stored.get("attempt") != self.job.attempt:
            return None
        return CallbackResult(id=str(stored.get("id")), payload=stored.get("payload"))

    @property
    def registered_callback(self) -> Callback | None:
        """The callback this attempt registered (``register_callback``), or None."""
        return self._callback

    async def register_callback(
        self, *, timeout: float | timedelta, resume: bool = False
    ) -> Callback:
        """Register a callback for this attempt and return its id and token.

        Registered (committed) before this returns, so the external system may resolve it
        at once, even before the handler returns ``awa.WaitForCallback(callback)``. One
        callback per attempt. ``timeout`` counts from now; ``resume=True`` runs the handler
        again with ``ctx.callback`` on completion instead of recording the payload as the
        job's result.
        """
        if self._callbacks is None:
            raise ConfigError(
                "this JobContext has no callback registrar: callbacks need a handler run by "
                "an awa runtime"
            )
        if self._callback is not None:
            raise InvalidTransition(self.job.id, "running", "register a second callback for")
        seconds = to_seconds("timeout", timeout)
        if seconds is None:
            raise ValidationError("timeout", timeout, "a callback needs a timeout")
        if not isinstance(resume, bool):
            raise ValidationError("resume", resume, "expected True or False")
        callback_id = uuid.uuid4()
        token = new_callback_token()
        timeout_at = await self._callbacks.register_callback(
            self.job.id,
            self.job.run_lease,
            callback_id,
            hash_callback_token(token),
            seconds,
            resume,
            self._clock.db_now() if self._clock is not None else None,
        )
        if timeout_at is None:
            raise InvalidTransition(self.job.id, "taken over", "register a callback for")
        self._callback = Callback(
            id=str(callback_id),
            token=token,
            job_id=self.job.id,
            run_lease=self.job.run_lease,
            timeout_at=timeout_at,
            resume=resume,
        )
        return self._callback


Handler = Callable[[JobContext[Any]], Awaitable[Any]]
#: A handler whose ``ctx.args`` is a ``T`` (registered with ``args=T``).
TypedHandler = Callable[[JobContext[T]], Awaitable[Any]]

_KIND = re.compile(r"[\w.:/-]+")  # fullmatch: "$" would let a trailing newline through


@dataclass(frozen=True)
class HandlerSpec:
    kind: str
    fn: Handler
    queue: str = "default"
    timeout: float | None = None
    description: str | None = None
    #: The ``args=`` type's reader, or None for handlers taking the stored JSON as is.
    codec: ArgsCodec[Any] | None = None


def check_description(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 2000 or "\x00" in value:
        raise ValidationError("description", value, "expected text of at most 2000 characters")
    if not valid_utf8(value):  # published as jsonb, which refuses it at start, not here
        raise ValidationError("description", value, "contains a lone surrogate (not valid UTF-8)")
    return value


@dataclass
class HandlerRegistry:
    """Kind → handler. Registering a kind twice is an error, not a silent override."""

    _specs: dict[str, HandlerSpec] = field(default_factory=dict)

    def register(
        self,
        kind: str,
        fn: Handler,
        *,
        queue: str = "default",
        timeout: float | timedelta | None = None,
        description: str | None = None,
        args: type[Any] | None = None,
    ) -> HandlerSpec:
        if not isinstance(kind, str) or not kind or len(kind) > MAX_KIND_LENGTH:
            raise ValidationError("kind", kind, f"expected 1..{MAX_KIND_LENGTH} characters")
        if not _KIND.fullmatch(kind):
            raise ValidationError("kind", kind, "use letters, digits and _ . : / - only")
        if kind in self._specs:
            raise ValidationError("kind", kind, "a handler for this kind is already registered")
        spec = HandlerSpec(
            kind,
            fn,
            queue,
            to_seconds("timeout", timeout),
            check_description(description),
            None if args is None else ArgsCodec(args),
        )
        self._specs[kind] = spec
        return spec

    @overload
    def __call__(
        self,
        kind: str,
        *,
        queue: str = ...,
        timeout: float | timedelta | None = ...,
        description: str | None = ...,
        args: None = ...,
    ) -> Callable[[Handler], Handler]: ...

    @overload
    def __call__(
        self,
        kind: str,
        *,
        queue: str = ...,
        timeout: float | timedelta | None = ...,
        description: str | None = ...,
        args: type[T],
    ) -> Callable[[TypedHandler[T]], TypedHandler[T]]: ...

    def __call__(
        self,
        kind: str,
        *,
        queue: str = "default",
        timeout: float | timedelta | None = None,
        description: str | None = None,
        args: type[Any] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Decorator form: ``@registry("send_email")``; with ``args=T`` the handler's
        ``ctx.args`` is a ``T`` (``awa.typed_args``)."""

        def decorate(fn: Handler) -> Handler:
            self.register(
                kind, fn, queue=queue, timeout=timeout, description=description, args=args
            )
            return fn

        return decorate

    def get(self, kind: str) -> HandlerSpec | None:
        return self._specs.get(kind)

    def kinds(self) -> list[str]:
        return sorted(self._specs)

    def __iter__(self) -> Iterator[HandlerSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)
