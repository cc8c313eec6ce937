"""The runtime's health endpoint, for orchestrators (Kubernetes probes, load balancers).

- ``GET /livez``: 200 while the runtime's host task is alive (starting or running), else
  503. A probe that restarts the process should use this one.
- ``GET /readyz``: 200 once ``start()`` has returned (startup recovery done) and until
  shutdown begins, else 503.
- ``GET /health``: JSON with role, state, leadership (leader or follower, lane mode) and
  per-branch lane health as the leader sees it in memory (duration, lateness, overrun
  episodes, delayed flag, errors), 200 when ready, 503 otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from awa.web.asgi import ASGIApp, Receive, Scope, Send, lifespan, send_json, send_text

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


def health_app(runtime: Runtime) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope.get("path", "")
        alive = runtime.state in ("starting", "running")
        ready = runtime.state == "running"
        if path == "/livez":
            await send_text(send, 200 if alive else 503, b"ok" if alive else b"not alive")
        elif path == "/readyz":
            await send_text(send, 200 if ready else 503, b"ready" if ready else b"not ready")
        elif path in ("/health", "/healthz"):
            await send_json(send, 200 if ready else 503, runtime_health(runtime))
        else:
            await send_text(send, 404, b"not found")

    return app
