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
from typing import Any, Protocol

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
from awa.validation import encode_json, to_seconds, valid_utf8

__all__ = ["CallbackRegistrar", "Handler", "HandlerRegistry", "HandlerSpec", "JobContext"]


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


class JobContext:
    """What a handler gets: the claimed ``job``, a way to report progress, and callbacks.

    Progress is kept in memory and written with the runtime's next heartbeat (one statement
    for all running jobs), so reporting progress often costs no extra round trips.

    ``callbacks`` and ``clock`` are supplied by the runtime; a context built without a
    registrar (unit tests, tools) cannot register callbacks.
    """

    __slots__ = ("_callback", "_callbacks", "_clock", "_progress", "_progress_dirty", "job")

    def __init__(
        self,
        job: Job,
        *,
        callbacks: CallbackRegistrar | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.job = job
        self._progress: Any = job.progress
        self._progress_dirty = False
        self._callbacks = callbacks
        self._clock = clock
        self._callback: Callback | None = None

    @property
    def args(self) -> Any:
        return self.job.args

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


Handler = Callable[[JobContext], Awaitable[Any]]

_KIND = re.compile(r"[\w.:/-]+")  # fullmatch: "$" would let a trailing newline through


@dataclass(frozen=True)
class HandlerSpec:
    kind: str
    fn: Handler
    queue: str = "default"
    timeout: float | None = None
    description: str | None = None


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
    ) -> HandlerSpec:
        if not isinstance(kind, str) or not kind or len(kind) > MAX_KIND_LENGTH:
            raise ValidationError("kind", kind, f"expected 1..{MAX_KIND_LENGTH} characters")
        if not _KIND.fullmatch(kind):
            raise ValidationError("kind", kind, "use letters, digits and _ . : / - only")
        if kind in self._specs:
            raise ValidationError("kind", kind, "a handler for this kind is already registered")
        spec = HandlerSpec(
            kind, fn, queue, to_seconds("timeout", timeout), check_description(description)
        )
        self._specs[kind] = spec
        return spec

    def __call__(
        self,
        kind: str,
        *,
        queue: str = "default",
        timeout: float | timedelta | None = None,
        description: str | None = None,
    ) -> Callable[[Handler], Handler]:
        """Decorator form: ``@registry("send_email")``."""

        def decorate(fn: Handler) -> Handler:
            self.register(kind, fn, queue=queue, timeout=timeout, description=description)
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
