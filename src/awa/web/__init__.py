"""Small ASGI applications for operators: the built-in lane dashboard and the runtime's
health endpoint. No web framework: each is a plain ASGI callable, mountable in any ASGI
app and servable with uvicorn (``awa.web.serve``)."""

from awa.web.dashboard import dashboard_app
from awa.web.health import health_app
from awa.web.serve import serve

__all__ = ["dashboard_app", "health_app", "serve"]
