"""Freeze the objects a started runtime holds, so the garbage collector stops re-reading them.

A worker process imports asyncpg, anyio, OpenTelemetry and the application, and opens pools:
~50,000 objects the cyclic garbage collector tracks. Every full (generation 2) collection
walks all of them: ~10 ms on the 2-core VM (``benchmarks`` issue 16 notes), with the GIL
held, so every event loop and the maintenance thread stand still meanwhile. Such a pause is
what a job picked up or promoted at that moment sees as its latency.

``gc.freeze()`` moves every tracked object into a permanent generation that collections skip
(a full collection then takes ~0 ms). Collecting first keeps garbage that already exists out
of it. The cost: a reference cycle among the frozen objects that becomes garbage later is
never collected (objects freed by reference counting still are). Once per process: a
process that starts and stops runtimes again and again (a supervisor, an application's
tests) would otherwise freeze each stopped runtime's cycles for good. Opt out with
``RuntimeConfig(freeze_gc=False)``. ADR 021.
"""

from __future__ import annotations

import gc
import logging

__all__ = ["freeze_startup_objects"]

log = logging.getLogger("awa.runtime")

#: Whether a runtime of this process has frozen already (tests reset it with the thaw).
frozen_once = False


def freeze_startup_objects() -> int:
    """Collect, then freeze what survives, the first time only; returns how many objects
    are frozen now."""
    global frozen_once
    if frozen_once:
        return gc.get_freeze_count()
    frozen_once = True
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("garbage collector: %d objects frozen (ADR 021)", frozen)
    return frozen
