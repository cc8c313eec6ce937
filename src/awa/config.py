"""Runtime configuration with documented defaults, validated once at construction."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field

from awa.backoff import DEFAULT_BACKOFF, Backoff
from awa.errors import ValidationError

__all__ = ["RuntimeConfig", "database_url_from_env", "new_instance_id"]


def new_instance_id() -> str:
    """Unique per process start: host, pid and a random suffix (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def database_url_from_env() -> str | None:
    return os.environ.get("AWA_DATABASE_URL") or None


@dataclass
class RuntimeConfig:
    """How a runtime claims, runs and reports jobs.

    - ``queues``: queue name → max concurrent handlers in this process (default
      ``{"default": 50}``).
    - ``claim_batch``: most jobs one claim statement takes (default 100).
    - ``poll_interval``: fallback poll when LISTEN/NOTIFY is live (default 5 s);
      ``notify=False`` disables LISTEN and polls every ``poll_interval_without_notify``
      (default 0.25 s).
    - ``heartbeat_interval``: one heartbeat statement per process this often (default 5 s).
    - ``completion_flush_interval`` / ``completion_batch``: completions are buffered and
      written together after at most this delay (default 2 ms) or this many (default 500).
    - ``shutdown_grace``: how long ``shutdown()`` lets handlers finish (default 30 s).
    - ``liveness_interval``: refresh of the runtime's liveness row (default 10 s).
    - ``backoff``: retry delays for failed attempts.
    """

    queues: dict[str, int] = field(default_factory=lambda: {"default": 50})
    claim_batch: int = 100
    poll_interval: float = 5.0
    poll_interval_without_notify: float = 0.25
    notify: bool = True
    heartbeat_interval: float = 5.0
    completion_flush_interval: float = 0.002
    completion_batch: int = 500
    shutdown_grace: float = 30.0
    liveness_interval: float = 10.0
    backoff: Backoff = DEFAULT_BACKOFF
    instance_id: str = field(default_factory=new_instance_id)
    pool_size: int = 10

    def __post_init__(self) -> None:
        if not isinstance(self.queues, dict):
            raise ValidationError("queues", self.queues, "expected a mapping queue -> concurrency")
        for name, limit in self.queues.items():
            if not isinstance(name, str) or not name:
                raise ValidationError("queues", name, "queue names must be non-empty strings")
            if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
                raise ValidationError(f"queues[{name!r}]", limit, "concurrency must be 1..10000")
        for name in (
            "poll_interval",
            "poll_interval_without_notify",
            "heartbeat_interval",
            "completion_flush_interval",
            "shutdown_grace",
            "liveness_interval",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ValidationError(name, value, "expected seconds >= 0")
        if not 1 <= self.claim_batch <= 10_000:
            raise ValidationError("claim_batch", self.claim_batch, "expected 1..10000")
        if not 1 <= self.completion_batch <= 100_000:
            raise ValidationError("completion_batch", self.completion_batch, "expected 1..100000")
        if not 2 <= self.pool_size <= 1000:
            raise ValidationError("pool_size", self.pool_size, "expected 2..1000")
