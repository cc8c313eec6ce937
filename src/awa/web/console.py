"""``awa dashboard``: the operator console, a Starlette app mountable under any prefix.

Pages (one HTML shell, plain JS and CSS shipped in the wheel, no build step, no CDN):
lanes (``/``), queues (``/queues``), jobs (``/jobs``), a job's detail (``/jobs/{id}``), and
the operator pages of ``console_ops_api`` (lane history charts, ``/cron``,
``/dead-letters``, ``/events``).
Each page polls a JSON API under ``/api/``; actions (pause/resume a queue; retry, cancel or
discard a job, or every job a filter matches, ADR 032; the operator pages' actions, ADR 033)
are POSTs guarded by ``console_guard`` (operator token + CSRF secret, ADR 031).

Why Starlette rather than the hand routing this replaced: mounted in FastAPI/Starlette at
``/ops``, a hand-routed app saw ``/ops/api/status`` and answered 404. Starlette strips the
mount's ``root_path`` before routing, and the shell's ``<base href>`` is written from that
same ``root_path``, so every link and fetch in the page is relative and lands back here.

Everything reaches the database through ``awa.admin`` over a small pool opened on the first
request and closed at lifespan shutdown (or by the embedding app: ``app.state.close()``).
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from awa.admin import Admin
from awa.errors import (
    AwaError,
    ConfirmationExceeded,
    DeadLetterConflict,
    DeadLetterNotFound,
    InvalidTransition,
    JobNotFound,
    ScheduleNotFound,
    ValidationError,
)
from awa.web.console_api import ConsoleApi, Json
from awa.web.console_guard import Guard, RateLimited, Refusal
from awa.web.console_ops_api import ConsoleOpsApi

__all__ = ["console_app", "dashboard_app"]

_SHELL = resources.files("awa.web").joinpath("static/console.html").read_text()


class _Pool:
    """The console's ``Admin``, opened once on first use (concurrent first requests share
    one open) and closed at shutdown."""

    def __init__(self, url: str, pool_size: int) -> None:
        self._url = url
        self._size = pool_size
        self._admin: Admin | None = None
        self._lock = anyio.Lock()

    async def admin(self) -> Admin:
        async with self._lock:
            if self._admin is None:
                self._admin = await Admin.open(self._url, pool_size=self._size)
            return self._admin

    async def close(self) -> None:
        async with self._lock:
            if self._admin is not None:
                admin, self._admin = self._admin, None
                await admin.close()


def _page(guard: Guard) -> Any:
    async def page(request: Request) -> Response:
        root: str = request.scope.get("root_path", "")
        base = root.rstrip("/") + "/"
        body = _SHELL.replace("{{base}}", html.escape(base, quote=True)).replace(
            "{{csrf}}", html.escape(guard.csrf, quote=True)
        )
        return Response(
            body,
            media_type="text/html; charset=utf-8",
            headers={"cache-control": "no-store", "x-frame-options": "DENY"},
        )

    return page


async def _rate_limited(request: Request, exc: Exception) -> Response:
    """429 as JSON like every other refusal, so the page can show why (and for how long)."""
    assert isinstance(exc, RateLimited)
    return Json(
        {"error": f"too many wrong tokens from this address; try again in {exc.retry_after} s"},
        status_code=429,
        headers={"Retry-After": str(exc.retry_after)},
    )


def _error(status: int) -> Any:
    async def handler(request: Request, exc: Exception) -> Response:
        return Json({"error": str(exc)}, status_code=status)

    return handler


def console_app(
    url: str,
    *,
    token: str | None = None,
    read_only: bool | None = None,
    health_interval: float | None = None,
    pool_size: int = 2,
) -> Starlette:
    """The console for the database at ``url`` as an ASGI app.

    - ``token``: the operator token that unlocks actions (entered once in the page, kept in
      a cookie; or sent as ``Authorization: Bearer``). Without one the console is read-only.
    - ``read_only=False`` without a token: every request may act — for a console mounted
      behind the application's own authentication (README, ADR 031). ``read_only=True``
      refuses actions even with a token.
    - ``health_interval``: overrides the health interval the maintenance leader persisted
      (its ``MaintenanceConfig.health_interval``; ADR 033): health rows older than twice it
      are shown STALE, never "on time". Default: the leader's (5 s if none is stored).
    """
    if token == "":
        raise ValidationError("token", token, "an empty operator token would admit anyone")
    if read_only:  # wins over a token
        guard = Guard(token=None, read_only=True)
    else:  # a token, or (read_only=False) the application's own auth, admits actions
        guard = Guard(token=token, read_only=token is None and read_only is None)
    pool = _Pool(url, pool_size)
    # ConsoleApi's own lanes reader needs a number; /api/lanes is served by ops below, which
    # reads the leader's persisted interval unless overridden (ADR 033).
    api = ConsoleApi(pool.admin, guard)
    ops = ConsoleOpsApi(pool.admin, guard, health_interval)
    page = _page(guard)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await pool.close()

    routes = [
        Route("/", page),
        Route("/index.html", page),
        Route("/queues", page),
        Route("/jobs", page),
        Route("/jobs/{job_id:int}", page),
        Mount("/static", StaticFiles(packages=[("awa.web", "static")]), name="static"),
        Route("/api/status", api.status),
        Route("/api/session", api.session, methods=["GET"]),
        Route("/api/login", api.login, methods=["POST"]),
        Route("/api/logout", api.logout, methods=["POST"]),
        Route("/api/queues", api.queues),
        Route("/api/queues/{name:path}/{action}", api.queue_action, methods=["POST"]),
        Route("/api/jobs", api.jobs),
        Route("/api/jobs/bulk/{action}", api.bulk_count, methods=["GET"]),
        Route("/api/jobs/bulk/{action}", api.bulk_action, methods=["POST"]),
        Route("/api/jobs/{job_id:int}", api.job),
        Route("/api/jobs/{job_id:int}/{action}", api.job_action, methods=["POST"]),
    ]
    # Operator pages (ADR 033, ``console_ops_api``): lane history, cron, dead letters, events.
    routes += [
        Route("/cron", page),
        Route("/dead-letters", page),
        Route("/events", page),
        Route("/api/lanes", ops.lanes),
        Route("/api/lanes/history", ops.lane_history),
        Route("/api/cron", ops.cron),
        Route("/api/cron/{name:path}/{action}", ops.cron_action, methods=["POST"]),
        Route("/api/dead-letters", ops.dead_letters),
        Route("/api/dead-letters/purge", ops.purge_all_dead_letters, methods=["POST"]),
        Route(
            "/api/dead-letters/{letter_id:int}/{action}",
            ops.dead_letter_action,
            methods=["POST"],
        ),
        Route("/api/events", ops.events),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            Refusal: _error(403),
            RateLimited: _rate_limited,
            JobNotFound: _error(404),
            ScheduleNotFound: _error(404),
            DeadLetterNotFound: _error(404),
            DeadLetterConflict: _error(409),
            InvalidTransition: _error(409),
            ConfirmationExceeded: _error(409),
            ValidationError: _error(400),
            AwaError: _error(503),
        },
    )
    app.state.close = pool.close
    return app


def dashboard_app(url: str, *, pool_size: int = 2) -> Starlette:
    """The console, read-only (the name the lane dashboard had before it grew into the
    console; kept for existing callers)."""
    return console_app(url, pool_size=pool_size)
