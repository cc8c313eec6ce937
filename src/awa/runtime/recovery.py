"""Startup recovery: before a runtime reports ready, give back the work of runtimes that died.

Why at startup and not only in the SLO lane: a fleet restarting after an outage may have no
maintenance leader yet (or the leader may be the process that is starting), and the operator
expects a process that says "ready" to be standing on a consistent database. Recovery is the
same guarded rescue the lane uses (only the attempt that was seen is touched, so racing the
leader or a completion is harmless), run in pages so that a backlog of any size is walked
with bounded memory, and retried under a ``RecoveryPolicy``; when the policy is exhausted
``start()`` raises ``StartupRecoveryError`` instead of running on top of a half-known state.

What it recovers:

- running attempts whose holder's presence lock is gone (crashed process or connection);
- running attempts whose holder's liveness row is missing, stopped, or expired
  (unseen for ``liveness_ttl`` seconds);
- unique keys whose job no longer exists (released so the key can be taken again).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from awa.clock import Clock
from awa.config import RecoveryPolicy
from awa.errors import AwaError, StartupRecoveryError
from awa.store import Store

__all__ = ["RecoveryReport", "recover_at_startup"]

log = logging.getLogger("awa.runtime")

_REASON_ORPHANED = "startup recovery: holder runtime is gone (presence lock released)"
_REASON_ABANDONED = "startup recovery: holder runtime's liveness expired"


@dataclass(frozen=True)
class RecoveryReport:
    requeued: int
    failed: int
    pages: int
    attempts: int
    #: Attempts an operator had asked to cancel: they end cancelled, not requeued.
    cancelled: int = 0


async def recover_at_startup(
    open_store: Callable[[], Awaitable[Store]],
    policy: RecoveryPolicy,
    clock: Clock,
    *,
    crash_grace: float,
    liveness_ttl: float,
    holder_silence: float | None = None,
) -> RecoveryReport:
    """Run recovery (on its own short-lived store, from ``open_store``) until it succeeds
    once, retrying per ``policy``; connecting is part of an attempt."""
    delay = policy.delay
    for attempt in range(1, policy.attempts + 1):
        try:
            with anyio.fail_after(policy.timeout):
                store = await open_store()
                try:
                    report = await _recover_once(
                        store, policy, clock, crash_grace, liveness_ttl, holder_silence
                    )
                finally:
                    with anyio.CancelScope(shield=True):
                        await store.close()
        except (AwaError, TimeoutError, OSError) as exc:
            if attempt == policy.attempts:
                raise StartupRecoveryError(attempt, exc) from exc
            log.warning(
                "startup recovery attempt %d/%d failed (%s: %s); retrying in %.2fs",
                attempt,
                policy.attempts,
                type(exc).__name__,
                exc,
                delay,
                extra={"event": "startup_recovery_retry", "attempt": attempt},
            )
            await clock.sleep(delay)
            delay *= 2
            continue
        report = dataclasses.replace(report, attempts=attempt)
        if report.requeued or report.failed or report.cancelled:
            log.info(
                "startup recovery: requeued %d, failed %d and cancelled %d (as requested) "
                "attempts of dead runtimes (%d pages)",
                report.requeued,
                report.failed,
                report.cancelled,
                report.pages,
                extra={
                    "event": "startup_recovery",
                    "requeued": report.requeued,
                    "failed": report.failed,
                    "cancelled": report.cancelled,
                },
            )
        return report
    raise AssertionError("unreachable: the loop returns or raises")


async def _recover_once(
    store: Store,
    policy: RecoveryPolicy,
    clock: Clock,
    crash_grace: float,
    liveness_ttl: float,
    holder_silence: float | None,
) -> RecoveryReport:
    requeued = failed = cancelled = pages = 0
    finders: list[tuple[Callable[[], Awaitable[list[tuple[int, int]]]], str]] = [
        (
            lambda: store.recovery.find_orphaned_running(
                crash_grace, policy.page_size, clock.db_now(), silence=holder_silence
            ),
            _REASON_ORPHANED,
        ),
        (
            lambda: store.recovery.find_abandoned_running(
                liveness_ttl, policy.page_size, clock.db_now()
            ),
            _REASON_ABANDONED,
        ),
    ]
    for finder, reason in finders:
        while True:
            page = await finder()
            pages += 1
            outcome = await store.recovery.rescue(
                page,
                from_states=["running"],
                reason=reason,
                retry_base_delay=0.0,
                now=clock.db_now(),
            )
            requeued += outcome.retried
            failed += outcome.failed
            cancelled += outcome.cancelled
            # A short page is the last one; a page where nothing moved means every row we
            # saw was taken by someone else meanwhile, and asking again would repeat it.
            moved = outcome.retried + outcome.failed + outcome.cancelled
            if len(page) < policy.page_size or moved == 0:
                break
    # Unique keys of pruned jobs are not collected here: that read every key, so a large
    # awa.job_unique could make start() time out (issue 19). An insert releases an orphaned
    # key it meets itself, and the cleanup branch pages through the rest.
    return RecoveryReport(requeued, failed, pages, 1, cancelled)
