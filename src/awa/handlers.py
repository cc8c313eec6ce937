"""Handler registration and the context a handler receives.

A leaf module on purpose: the producer side (``awa.Client``, where the ``@client.handler``
decorator lives) and the worker side (which looks handlers up by kind) both need it, and the
layering forbids those two from importing each other.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from awa.errors import ValidationError
from awa.model import MAX_KIND_LENGTH, Job, encode_json, to_seconds

__all__ = ["Handler", "HandlerRegistry", "HandlerSpec", "JobContext"]


class JobContext:
    """What a handler gets: the claimed ``job`` and a way to report progress.

    Progress is kept in memory and written with the runtime's next heartbeat (one statement
    for all running jobs), so reporting progress often costs no extra round trips.
    """

    __slots__ = ("_progress", "_progress_dirty", "job")

    def __init__(self, job: Job) -> None:
        self.job = job
        self._progress: Any = job.progress
        self._progress_dirty = False

    @property
    def args(self) -> Any:
        return self.job.args

    @property
    def progress(self) -> Any:
        return self._progress

    def set_progress(self, progress: Any) -> None:
        """Record progress (any JSON value); persisted with the next heartbeat."""
        encode_json("progress", progress)
        self._progress = progress
        self._progress_dirty = True

    def take_progress(self) -> tuple[bool, Any]:
        """(changed since last call, value): used by the heartbeat."""
        dirty, self._progress_dirty = self._progress_dirty, False
        return dirty, self._progress


Handler = Callable[[JobContext], Awaitable[Any]]

_KIND = re.compile(r"^[\w.:/-]+$")


@dataclass(frozen=True)
class HandlerSpec:
    kind: str
    fn: Handler
    queue: str = "default"
    timeout: float | None = None


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
    ) -> HandlerSpec:
        if not isinstance(kind, str) or not kind or len(kind) > MAX_KIND_LENGTH:
            raise ValidationError("kind", kind, f"expected 1..{MAX_KIND_LENGTH} characters")
        if not _KIND.match(kind):
            raise ValidationError("kind", kind, "use letters, digits and _ . : / - only")
        if kind in self._specs:
            raise ValidationError("kind", kind, "a handler for this kind is already registered")
        spec = HandlerSpec(kind, fn, queue, to_seconds("timeout", timeout))
        self._specs[kind] = spec
        return spec

    def __call__(
        self, kind: str, *, queue: str = "default", timeout: float | timedelta | None = None
    ) -> Callable[[Handler], Handler]:
        """Decorator form: ``@registry("send_email")``."""

        def decorate(fn: Handler) -> Handler:
            self.register(kind, fn, queue=queue, timeout=timeout)
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
