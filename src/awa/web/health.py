"""The runtime's health endpoint, for orchestrators (Kubernetes probes, load balancers).

- ``GET /livez``: 200 while the runtime's host task is alive (starting or running), else
  503. A probe that restarts the process should use this one.
- ``GET /readyz``: 200 once ``start()`` has returned (startup recovery done) and until
  shutdown begins, else 503.
- ``GET /health``: JSON with role, state, leadership (leader or follower, lane mode) and
  per-branch lane health as the leader sees it in memory (duration, lateness, overrun
  episodes, delayed flag, errors), 200 when ready, 503 otherwise (``/healthz`` too).

A Starlette app rather than hand routing (as the console, ADR 031): mounted under a prefix
in FastAPI/Starlette (``app.mount("/ops", health_app(runtime))``), Starlette strips the
prefix into ``root_path`` and routes the rest, where the hand-written router compared the
full path and answered 404 for everything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from awa.web.asgi import to_json

if TYPE_CHECKING:
    from awa.runtime import Runtime

__all__ = ["health_app", "runtime_health"]


def runtime_health(runtime: Runtime) -> dict[str, Any]:
    leader = runtime.leader
    branches: dict[str, Any] = {}
    if leader is not None and leader.is_leader:
        lane_of = {n: lane for lane, obj in leader.lanes.items() for n in obj.stats}
        for name, stats in leader.stats.items():
            row = stats.health(lane_of.get(name, stats.branch.lane))
            branches[name] = {
                "lane": row.lane,
                "interval_s": row.interval_s,
                "last_duration_s": row.last_duration_s,
                "last_lateness_s": row.last_lateness_s,
                "max_lateness_s": row.max_lateness_s,
                "runs": row.runs,
                "errors": row.errors,
                "overruns": row.overruns,
                "delayed": row.delayed,
                "last_error": row.last_error,
            }
    return {
        "instance_id": runtime.instance_id,
        "role": runtime.role,
        "state": runtime.state,
        "ready": runtime.state == "running",
        "queues": runtime.queues,
        "maintenance": {
            "enabled": runtime.run_maintenance,
            "leader": bool(leader is not None and leader.is_leader),
            "terms": 0 if leader is None else leader.terms,
            "mode": None if leader is None else leader.mode,
            "delayed_branches": sorted(n for n, b in branches.items() if b["delayed"]),
            "branches": branches,
        },
    }


class _Json(JSONResponse):
    """JSON through awa's encoder (datetimes, decimals) like every other awa endpoint."""

    def render(self, content: Any) -> bytes:
        return to_json(content)


#: Probes must never be answered from a cache between the orchestrator and the process.
_NO_STORE = {"cache-control": "no-store"}


def health_app(runtime: Runtime) -> Starlette:
    """The probes and the JSON health of ``runtime``, as an ASGI app mountable anywhere."""

    async def livez(request: Request) -> Response:
        alive = runtime.state in ("starting", "running")
        return PlainTextResponse(
            "ok" if alive else "not alive", 200 if alive else 503, headers=_NO_STORE
        )

    async def readyz(request: Request) -> Response:
        ready = runtime.state == "running"
        return PlainTextResponse(
            "ready" if ready else "not ready", 200 if ready else 503, headers=_NO_STORE
        )

    async def health(request: Request) -> Response:
        ready = runtime.state == "running"
        return _Json(runtime_health(runtime), 200 if ready else 503, headers=_NO_STORE)

    return Starlette(
        routes=[
            Route("/livez", livez),
            Route("/readyz", readyz),
            Route("/health", health),
            Route("/healthz", health),
        ]
    )
