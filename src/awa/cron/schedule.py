"""Periodic jobs declared in code: what to enqueue, when, and what to do about missed fires.

A ``CronSchedule`` is validated when declared (bad expression, unknown timezone, unknown
policy: a ``ValidationError`` naming the field), so a typo fails at import time of the
application, not at 3 a.m. in the leader. ``CronTable`` is the per-client set of
declarations that ``cron_sync`` publishes.

Policies (ADR 005):

- ``misfire``: ``skip`` (fire on trigger or not at all; missed fires are recorded as
  missed), ``catchup_all`` (enqueue every missed fire within ``catchup_window``, oldest
  first, bounded per pass), ``catchup_latest`` (enqueue only the most recent missed fire
  within the window). Aliases: ``catchup`` ⇒ ``catchup_all``; ``compress`` and
  ``coalesce`` ⇒ ``catchup_latest``.
- ``overlap``: ``allow`` (always enqueue), ``skip`` (not while the previous fire's job is
  pending or running), ``buffer_one`` (not while the previous fire's job is still pending:
  at most one fire waits behind a running one).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import StrEnum
from typing import Any

from awa.cron.expression import CronExpression
from awa.errors import ValidationError
from awa.model import InsertParams
from awa.validation import to_seconds

__all__ = ["DEFAULT_QUEUE", "MISFIRE_ALIASES", "CronSchedule", "CronTable", "Misfire", "Overlap"]

#: Where a fire goes when neither the schedule nor a handler for its kind names a queue
#: (the same fallback as ``client.insert`` for a kind nobody registered).
DEFAULT_QUEUE = "default"


class Misfire(StrEnum):
    SKIP = "skip"
    CATCHUP_ALL = "catchup_all"
    CATCHUP_LATEST = "catchup_latest"


class Overlap(StrEnum):
    ALLOW = "allow"
    SKIP = "skip"
    BUFFER_ONE = "buffer_one"


#: Older spellings accepted for ``misfire``.
MISFIRE_ALIASES: Mapping[str, Misfire] = {
    "catchup": Misfire.CATCHUP_ALL,
    "catch_up": Misfire.CATCHUP_ALL,
    "compress": Misfire.CATCHUP_LATEST,
    "coalesce": Misfire.CATCHUP_LATEST,
}


def parse_misfire(value: Misfire | str) -> Misfire:
    if isinstance(value, Misfire):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in MISFIRE_ALIASES:
            return MISFIRE_ALIASES[text]
        try:
            return Misfire(text)
        except ValueError:
            pass
    choices = [m.value for m in Misfire] + sorted(MISFIRE_ALIASES)
    raise ValidationError("misfire", value, f"expected one of {', '.join(choices)}")


def parse_overlap(value: Overlap | str) -> Overlap:
    try:
        return value if isinstance(value, Overlap) else Overlap(str(value).strip().lower())
    except ValueError:
        choices = ", ".join(o.value for o in Overlap)
        raise ValidationError("overlap", value, f"expected one of {choices}") from None


def _check_name(name: object) -> None:
    if isinstance(name, str) and 0 < len(name) <= 200 and "\x00" not in name:
        try:
            name.encode("utf-8")
            return
        except UnicodeEncodeError:
            pass
    raise ValidationError("name", name, "expected text of 1..200 characters, no NUL")


def _seconds(name: str, value: float | timedelta) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ValidationError(name, value, "expected seconds >= 0 or a timedelta")
    return float(seconds)


@dataclass(frozen=True)
class CronSchedule:
    """One periodic job. ``args``/``metadata`` must be JSON; the job carries the scheduled
    instant in ``metadata["awa.cron"]``.

    - ``queue``: where each fire is enqueued. ``None`` (the default) means *the queue of
      the handler registered for ``kind``* (``"default"`` if this process registers none),
      exactly as ``client.insert`` chooses; a queue given here always wins. ``None`` is
      resolved by ``CronTable.resolved()`` when the table is published, see there why.

    - ``catchup_window``: how far back missed fires are still worth running (default 1 h).
    - ``max_catchup``: most missed fires enqueued per evaluation pass (default 100).
    - ``miss_tolerance``: how long after a fire instant a successful run may take before
      the fire counts as missed for detection (default 60 s).
    """

    name: str
    expression: str
    kind: str
    args: Any = None
    queue: str | None = None
    priority: int = 2
    max_attempts: int = 25
    timezone: str = "UTC"
    misfire: Misfire | str = Misfire.SKIP
    catchup_window: float | timedelta = 3600.0
    max_catchup: int = 100
    overlap: Overlap | str = Overlap.ALLOW
    paused: bool = False
    miss_tolerance: float | timedelta = 60.0
    tags: Sequence[str] = ()
    metadata: Mapping[str, Any] | None = None
    cron: CronExpression = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        # The job each fire enqueues, validated now exactly as an insert would validate it
        # (kind, queue, priority, attempts, tags, metadata, strict JSON args): a bad
        # declaration fails at import time of the application, never in the leader.
        # An unresolved queue stands for a handler's, which was validated when registered.
        job = InsertParams(
            kind=self.kind,
            args=self.args,
            queue=DEFAULT_QUEUE if self.queue is None else self.queue,
            priority=self.priority,
            max_attempts=self.max_attempts,
            tags=self.tags,
            metadata=self.metadata,
        )
        _ = job.args_json, job.metadata_json
        object.__setattr__(self, "cron", CronExpression(self.expression, self.timezone))
        object.__setattr__(self, "expression", self.cron.expression)
        object.__setattr__(self, "misfire", parse_misfire(self.misfire))
        object.__setattr__(self, "overlap", parse_overlap(self.overlap))
        for name in ("catchup_window", "miss_tolerance"):
            seconds = to_seconds(name, getattr(self, name), allow_zero=True)
            if seconds is None:  # both have defaults; None would only break evaluation
                raise ValidationError(name, None, "expected seconds >= 0 or a timedelta")
            object.__setattr__(self, name, seconds)
        catchup = self.max_catchup
        if isinstance(catchup, bool) or not isinstance(catchup, int) or not 1 <= catchup <= 10_000:
            raise ValidationError("max_catchup", catchup, "expected an int in 1..10000")
        if not isinstance(self.paused, bool):
            raise ValidationError("paused", self.paused, "expected a bool")

    @property
    def window_s(self) -> float:
        return float(self.catchup_window)  # type: ignore[arg-type]

    @property
    def tolerance_s(self) -> float:
        return float(self.miss_tolerance)  # type: ignore[arg-type]

    def resolve(self, handler_queue: str | None) -> CronSchedule:
        """This schedule with a concrete queue: its own if it names one, else
        ``handler_queue`` (the queue of the handler for ``kind``), else ``"default"``."""
        if self.queue is not None:
            return self
        return replace(self, queue=DEFAULT_QUEUE if handler_queue is None else handler_queue)

    def declaration(self) -> dict[str, Any]:
        """The declared fields, as stored (and fingerprinted) by ``cron_sync``, which
        publishes those of ``CronTable.resolved()`` (``queue`` is None here until resolved,
        and the stored row must name the queue its fires go to)."""
        return {
            "expression": self.expression,
            "timezone": self.timezone,
            "kind": self.kind,
            "args": self.args,
            "queue": self.queue,
            "priority": self.priority,
            "max_attempts": self.max_attempts,
            "misfire": Misfire(self.misfire).value,
            "catchup_window_s": self.window_s,
            "max_catchup": self.max_catchup,
            "overlap": Overlap(self.overlap).value,
            "paused": self.paused,
            "miss_tolerance_s": self.tolerance_s,
            "tags": list(self.tags),
            "metadata": dict(self.metadata or {}),
        }

    def fingerprint(self) -> str:
        text = json.dumps(self.declaration(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class CronTable:
    """The schedules an application declares (``client.cron``).

    ``queue_of(kind)`` names the queue of the handler registered for ``kind`` (None if
    there is none); ``Client`` passes its handler registry's lookup, a bare table has none
    and sends unnamed queues to ``"default"``.
    """

    def __init__(self, queue_of: Callable[[str], str | None] | None = None) -> None:
        self._schedules: dict[str, CronSchedule] = {}
        self._queue_of = queue_of

    def add(self, name: str, expression: str, kind: str, **options: Any) -> CronSchedule:
        """Declare a periodic job (see ``CronSchedule`` for the options)."""
        schedule = CronSchedule(name=name, expression=expression, kind=kind, **options)
        if name in self._schedules:
            raise ValidationError("name", name, "a cron schedule with this name already exists")
        self._schedules[name] = schedule
        return schedule

    def __iter__(self) -> Iterator[CronSchedule]:
        """The schedules as declared (``queue`` may still be None)."""
        return iter(self._schedules.values())

    def resolved(self) -> list[CronSchedule]:
        """The schedules as published: each with the queue its fires go to.

        Why a schedule's default queue is resolved here, at publication (runtime start and
        every ``cron_sync`` pass), and neither when it is declared nor when evaluated:

        - not at declaration: ``client.schedule(...)`` may run before the
          ``@client.handler(kind, queue=...)`` it refers to is registered (another module,
          imported later), and then the handler's queue is not known yet; resolving there
          froze ``"default"`` into the schedule, and its jobs waited in a queue nobody served.
          By publication the application is imported and its handlers are registered,
          whichever order they were declared in.
        - not at evaluation: the leader that fires the schedule may be a process without
          the application's handlers (``awa maintenance run`` without ``--app``, another
          deploy's worker), so the stored row must already name the queue.

        A handler moved to another queue changes the resolved declaration, hence its
        fingerprint, so the next sync updates the stored row.
        """
        lookup = self._queue_of
        return [s.resolve(lookup(s.kind) if lookup else None) for s in self._schedules.values()]

    def __len__(self) -> int:
        return len(self._schedules)

    def __contains__(self, name: object) -> bool:
        return name in self._schedules
