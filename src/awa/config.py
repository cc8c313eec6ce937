"""Runtime configuration with documented defaults, validated once at construction."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field

from awa.backoff import DEFAULT_BACKOFF, Backoff
from awa.errors import ValidationError

__all__ = [
    "LANE_MODES",
    "MaintenanceConfig",
    "RecoveryPolicy",
    "RuntimeConfig",
    "database_url_from_env",
    "new_instance_id",
]


def new_instance_id() -> str:
    """Unique per process start: host, pid and a random suffix (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def database_url_from_env() -> str | None:
    return os.environ.get("AWA_DATABASE_URL") or None


@dataclass(frozen=True)
class RecoveryPolicy:
    """How a starting runtime recovers work left by runtimes that died (see ``Runtime``).

    - ``attempts``: tries before ``start()`` raises ``StartupRecoveryError`` (default 5).
    - ``delay``: seconds before the first retry, doubled after each failure (default 0.5).
    - ``timeout``: bound on one attempt, all pages included (default 30 s).
    - ``page_size``: jobs examined per statement, so a huge backlog is paged through with
      bounded memory (default 500).
    """

    attempts: int = 5
    delay: float = 0.5
    timeout: float = 30.0
    page_size: int = 500

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not 1 <= self.attempts <= 100:
            raise ValidationError("startup_recovery.attempts", self.attempts, "expected 1..100")
        for name in ("delay", "timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ValidationError(f"startup_recovery.{name}", value, "expected seconds >= 0")
        if not 1 <= self.page_size <= 100_000:
            raise ValidationError("startup_recovery.page_size", self.page_size, "1..100000")


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
    - ``presence_beat_interval``: while it holds jobs, the runtime also beats its liveness
      row this often (default 0.5 s): the positive evidence of life that keeps a live
      runtime's jobs from being rescued when only its presence connection failed
      (``MaintenanceConfig.holder_silence``; ADR 014).
    - ``presence_check_interval``: the presence connection is checked this often, with the
      same timeout (default 1 s); a failed check pauses claiming until presence is back.
    - ``instance_id``: this runtime's identity; ``None`` (default) gives every runtime built
      from this config a fresh one. An id a live runtime already holds is refused with
      ``RuntimeStateError`` at ``start()``.
    - ``backoff``: retry delays for failed attempts.
    - ``startup_recovery``: how ``start()`` recovers work held by dead runtimes before it
      reports ready (``RecoveryPolicy``).
    - ``freeze_gc``: once started, collect and then freeze every object alive (default
      True; ``awa.runtime.gc_freeze``, ADR 021): the imports and pools of a worker make a
      full collection cost ~10 ms, a pause of every loop and thread that shows up as the
      pickup and promotion tail.
    - ``claim_on_insert``: a ``client.insert`` made in this process, on the runtime's
      loop, of a job due now for a queue and kind this runtime serves with a slot free,
      goes in already claimed and starts here as soon as its commit returns, unless the
      queue is paused or has an available job that would be claimed first (default True;
      ``awa.local_claims``, ADR 045).
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
    presence_beat_interval: float = 0.5
    presence_check_interval: float = 1.0
    backoff: Backoff = DEFAULT_BACKOFF
    instance_id: str | None = None
    pool_size: int = 10
    startup_recovery: RecoveryPolicy = field(default_factory=RecoveryPolicy)
    freeze_gc: bool = True
    claim_on_insert: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.queues, dict):
            raise ValidationError("queues", self.queues, "expected a mapping queue -> concurrency")
        for name, limit in self.queues.items():
            if not isinstance(name, str) or not name:
                raise ValidationError("queues", name, "queue names must be non-empty strings")
            if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
                raise ValidationError(f"queues[{name!r}]", limit, "concurrency must be 1..10000")
        if self.instance_id is not None and (
            not isinstance(self.instance_id, str) or not self.instance_id.strip()
        ):
            raise ValidationError("instance_id", self.instance_id, "expected a non-empty string")
        for name in (
            "poll_interval",
            "poll_interval_without_notify",
            "heartbeat_interval",
            "completion_flush_interval",
            "shutdown_grace",
            "liveness_interval",
            "presence_beat_interval",
            "presence_check_interval",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ValidationError(name, value, "expected seconds >= 0")
        for flag in ("freeze_gc", "claim_on_insert"):
            if not isinstance(getattr(self, flag), bool):
                raise ValidationError(flag, getattr(self, flag), "expected True or False")
        if not 1 <= self.claim_batch <= 10_000:
            raise ValidationError("claim_batch", self.claim_batch, "expected 1..10000")
        if not 1 <= self.completion_batch <= 100_000:
            raise ValidationError("completion_batch", self.completion_batch, "expected 1..100000")
        if not 2 <= self.pool_size <= 1000:
            raise ValidationError("pool_size", self.pool_size, "expected 2..1000")


LANE_MODES = ("split", "single", "auto")


@dataclass
class MaintenanceConfig:
    """How the maintenance leader elects itself and runs its lanes.

    - ``mode``: ``split`` (default; SLO and hygiene lanes with separate budgets and
      connections), ``single`` (one lane, capacity 1: the classic one-loop design) or
      ``auto`` (start single, switch to split on the first SLO-branch overrun episode; see
      ADR 003).
    - ``election_interval``: how long a leader that stepped down waits before it campaigns
      again (default 2 s, ±20 % jitter); followers wait for the lock instead (ADR 036).
    - ``leader_check_interval`` / ``leader_check_timeout``: the watchdog's health check of
      the leader connection (default 5 s / 2 s).
    - ``slo_capacity`` / ``hygiene_capacity``: branch bodies that may touch the database at
      once per lane (default 2 / 2); each lane has a pool of that size. Hygiene gets two
      so one slow body (a long cleanup, a user branch) cannot hold cron fires back
      (ADR 010).
    - ``health_interval``: how often per-branch health is persisted (default 5 s).
    - ``heartbeat_staleness``: running jobs whose heartbeat is older are rescued (default
      30 s, ≥ 3 × the worker heartbeat interval).
    - ``crash_grace``: a running job whose runtime's presence lock vanished is rescued once
      it was claimed at least this long ago (default 0.5 s) and its runtime has not beaten
      its liveness row for ``holder_silence`` (default 2 s, > 3 × the runtimes'
      ``presence_beat_interval``): a missing lock alone is not proof of death (ADR 014).
    - ``retention``: seconds finished jobs are kept, per state (default 1 day completed,
      7 days failed and cancelled). The history ring turns with the completed retention
      and reclaims completed jobs, the bulk, by TRUNCATE; failed and cancelled jobs, kept
      longer, are carried forward through the ring until their own retention passes
      (ADR 035). A state kept for less than completed is deleted row by row by cleanup.
    - ``startup_jitter``: spread branch first runs over up to this many seconds (default
      0.2; tests set 0).
    - ``intervals``: per-branch interval overrides, ``{"cleanup": 10.0}``.
    - ``idle_stretch``: let branches with nothing to watch run less often (each idle run
      doubles the interval up to a per-branch factor; work announced by a claim, a due time
      or a cron change restores it; ADR 029). Default True: an idle database then costs
      under one transaction a second. False keeps every interval constant.
    - ``isolate``: run the leader and its lanes on a thread of their own, with their own
      event loop, so a handler blocking the runtime's loop cannot delay them (default True;
      ADR 013). Only with the real clock: under a ``FakeClock`` the leader stays in the
      runtime's loop.
    """

    mode: str = "split"
    election_interval: float = 2.0
    leader_check_interval: float = 5.0
    leader_check_timeout: float = 2.0
    slo_capacity: int = 2
    hygiene_capacity: int = 2
    health_interval: float = 5.0
    heartbeat_staleness: float = 30.0
    crash_grace: float = 0.5
    holder_silence: float = 2.0
    retention: dict[str, float] = field(
        default_factory=lambda: {
            "completed": 86400.0,
            "failed": 7 * 86400.0,
            "cancelled": 7 * 86400.0,
        }
    )
    startup_jitter: float = 0.2
    intervals: dict[str, float] = field(default_factory=dict)
    idle_stretch: bool = True
    isolate: bool = True

    def __post_init__(self) -> None:
        if self.mode not in LANE_MODES:
            raise ValidationError("mode", self.mode, f"expected one of: {', '.join(LANE_MODES)}")
        for name in (
            "election_interval",
            "leader_check_interval",
            "leader_check_timeout",
            "health_interval",
            "heartbeat_staleness",
            "holder_silence",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value <= 0:
                raise ValidationError(name, value, "expected seconds > 0")
        for name in ("slo_capacity", "hygiene_capacity"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 16:
                raise ValidationError(name, value, "expected 1..16")
        for state in ("completed", "failed", "cancelled"):
            if not self.retention.get(state, 0) > 0:
                raise ValidationError(
                    f"retention[{state!r}]", self.retention.get(state), "expected seconds > 0"
                )
        for name, value in self.intervals.items():
            if not isinstance(value, int | float) or value <= 0:
                raise ValidationError(f"intervals[{name!r}]", value, "expected seconds > 0")
        if not isinstance(self.idle_stretch, bool):
            raise ValidationError("idle_stretch", self.idle_stretch, "expected True or False")
