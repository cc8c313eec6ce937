"""Running one handler call: its deadline, and what it returned, raised or ran out of.

Why a module of its own: the dispatcher and ``awa.testing.perform`` must run a handler the
same way, or a test would pass for an outcome the worker records differently. What an
attempt *means* for the database is ``awa.worker.outcomes.decide``; how the call itself is
made (which limit applies, which exceptions are the handler's and which are awa's own
cancellation, how an escaped ``BaseException`` is kept from ending the runtime) is here.
Both callers then hand the ``Invocation`` to ``decide`` with ``attempt_timeout``'s limit.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import anyio

from awa.handlers import HandlerSpec, JobContext
from awa.model import Job

__all__ = ["HandlerEscaped", "Invocation", "attempt_timeout", "invoke", "scope_factory"]


@dataclass(slots=True)  # not frozen: one per job, and a frozen __init__ costs 3x
class Invocation:
    """What one handler call did: ``returned`` a value, ``raised`` an exception (awa's
    outcomes included), or ran past its deadline (``timed_out``)."""

    returned: object = None
    raised: BaseException | None = None
    timed_out: bool = False


def scope_factory() -> Callable[[], anyio.CancelScope]:
    """A maker of cancel scopes for the running event loop's backend; call it on the loop.

    ``anyio.CancelScope()`` finds the backend anew on every call (a sniffio lookup and an
    ``asyncio.current_task`` call, a Python function on 3.11); the class it returns is the
    backend's own and builds the same scope without that lookup. One scope per attempt made
    the lookup ~3 % of the drain's CPU (issue 16)."""
    return type(anyio.CancelScope())


def attempt_timeout(job: Job, spec: HandlerSpec | None) -> float | None:
    """The limit for this attempt: the job's own ``timeout``, else the handler's."""
    if job.timeout is not None:
        return job.timeout
    return spec.timeout if spec is not None else None


async def invoke(
    call: Callable[[JobContext], Awaitable[Any]],
    context: JobContext,
    *,
    timeout: float | None,
    scope: anyio.CancelScope,
) -> Invocation:
    """Call ``call(context)`` inside ``scope`` (the attempt's, cancelled by an operator's
    cancel, shutdown or a lost lease) and under ``timeout``.

    A cancellation awa sent (the deadline, ``scope``, an enclosing group) propagates,
    except that the deadline's own is caught and reported as ``timed_out``; every other
    exception is the handler's and is returned in ``raised``.
    """
    # No placeholder scope without a timeout: a cancel scope per job costs more than the
    # rest of the bookkeeping (issue 16's drain profile); the attempt's scope remains.
    deadline = anyio.move_on_after(timeout) if timeout is not None else None
    returned: object = None
    raised: BaseException | None = None
    with scope, deadline if deadline is not None else nullcontext():
        try:
            returned = await call(context)
        except Exception as exc:
            raised = exc
        except BaseException as exc:
            if _cancelled_by_awa(exc):
                raise  # the deadline, an operator's cancel, shutdown or abort
            # A handler leaking CancelledError, or raising SystemExit/KeyboardInterrupt,
            # must not end the runtime (nor, when retried, the next one): this attempt
            # fails as retryable, with a clear error.
            raised = HandlerEscaped(exc)
    timed_out = deadline is not None and deadline.cancelled_caught
    return Invocation(returned, raised, timed_out)


class HandlerEscaped(Exception):
    """A handler raised a ``BaseException`` that is not awa's own cancellation: a leaked
    ``CancelledError`` (e.g. from a future cancelled elsewhere), ``SystemExit`` or
    ``KeyboardInterrupt``. The attempt fails (retryable); the runtime goes on."""

    def __init__(self, escaped: BaseException) -> None:
        self.escaped = escaped
        what = type(escaped).__name__
        detail = f": {escaped}" if str(escaped) else ""
        super().__init__(
            f"handler raised {what}{detail} without being cancelled by awa; "
            "the attempt is failed (retryable) and the runtime goes on"
        )


def _cancelled_by_awa(exc: BaseException) -> bool:
    """Whether ``exc`` is a cancellation awa asked for. Every cancellation awa sends a
    handler comes through an anyio cancel scope (the deadline, the attempt's scope, the
    executions group), and then the effective deadline here is -inf. ``Task.cancelling()``
    is not enough: a handler or library that cancels its own task and never uncancels it
    would make a later leaked ``CancelledError`` look like ours. Call inside the scopes."""
    return (
        isinstance(exc, asyncio.CancelledError) and anyio.current_effective_deadline() == -math.inf
    )
