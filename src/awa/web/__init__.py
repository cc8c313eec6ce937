"""Small ASGI applications: the built-in lane dashboard, the runtime's health endpoint and
the callback ingress. No web framework: each is a plain ASGI callable, mountable in any
ASGI app and servable with uvicorn (``awa.web.serve``). They reach the database through
``awa.admin`` (dashboard) or the client (ingress), never ``awa.store``."""

from awa.web.dashboard import dashboard_app
from awa.web.health import health_app
from awa.web.ingress import callback_app
from awa.web.serve import serve

__all__ = ["callback_app", "dashboard_app", "health_app", "serve"]
