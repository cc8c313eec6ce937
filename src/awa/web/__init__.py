"""Small ASGI applications: the operator console (``awa dashboard``, a Starlette app
mountable under any prefix), the runtime's health endpoint and the callback ingress. The
health and ingress apps are plain ASGI callables; all are servable with uvicorn
(``awa.web.serve``). They reach the database through ``awa.admin`` (console) or the client
(ingress), never ``awa.store``."""

from awa.web.console import console_app, dashboard_app
from awa.web.health import health_app
from awa.web.ingress import callback_app
from awa.web.serve import serve

__all__ = ["callback_app", "console_app", "dashboard_app", "health_app", "serve"]
