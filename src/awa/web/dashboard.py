"""``awa dashboard``: a live page of lane health and queue stats, straight from PostgreSQL.

For teams without Prometheus: it reads what the maintenance leader persists
(``awa.maintenance_leader``, ``awa.maintenance_health``, ``awa.queue_stats``), so it adds
three cheap reads per refresh and no load on the job tables. ``GET /`` is one HTML page
(inline script, no build step) that polls ``GET /api/status`` (JSON) every 2 seconds.
"""

from __future__ import annotations

from importlib import resources

from awa.admin import Admin
from awa.errors import AwaError
from awa.web.asgi import ASGIApp, Receive, Scope, Send, lifespan, send_json, send_text

__all__ = ["dashboard_app"]

PAGE = resources.files("awa.web").joinpath("dashboard.html").read_bytes()


def dashboard_app(url: str, *, pool_size: int = 2) -> ASGIApp:
    """An ASGI app serving the dashboard for the database at ``url`` (pool opened lazily on
    the first request, closed at lifespan shutdown)."""
    admin: Admin | None = None

    async def close() -> None:
        if admin is not None:
            await admin.close()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal admin
        if scope["type"] == "lifespan":
            await lifespan(receive, send, on_shutdown=close)
            return
        if scope["type"] != "http":
            return
        path = scope.get("path", "")
        if path in ("/", "/index.html"):
            await send_text(send, 200, PAGE, "text/html; charset=utf-8")
            return
        if path != "/api/status":
            await send_text(send, 404, b"not found")
            return
        try:
            if admin is None:
                admin = await Admin.open(url, pool_size=pool_size)
            await send_json(send, 200, await admin.maintenance.snapshot())
        except AwaError as exc:
            await send_json(send, 503, {"error": str(exc)})

    return app
