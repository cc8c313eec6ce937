"""Who may act through the console, and proof that a POST came from the console's own page.

Two independent checks guard every action (ADR 031):

- **Operator**: the console is read-only unless it was given an operator token (``awa
  dashboard --token`` / ``AWA_CONSOLE_TOKEN``) and the request carries it — as the
  ``awa_console_token`` cookie the page sets after the operator enters it once, or as an
  ``Authorization: Bearer`` header for scripts — or it was built with ``read_only=False``,
  which hands the question to the application's own authentication in front of it.
- **Same origin**: a per-app random secret is embedded in the page (``<meta name=csrf>``) and
  must come back in the ``X-CSRF-Token`` header; a cross-site form cannot set a header, and a
  cross-site script cannot read the page to learn the secret. An ``Origin`` header naming
  another site is refused outright (belt and braces, and cheaper than trusting browsers).

Comparisons are constant-time (``hmac.compare_digest``): the token is a password.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.requests import Request

__all__ = ["COOKIE", "CSRF_HEADER", "Guard", "Refusal"]

#: The cookie that carries the operator token from the browser.
COOKIE = "awa_console_token"
#: The header a POST must echo the page's CSRF secret in.
CSRF_HEADER = "x-csrf-token"


class Refusal(Exception):
    """An action refused (HTTP 403) and why, in words the operator can act on."""


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass
class Guard:
    """The console's access policy: ``token`` (None: no operator login) and ``read_only``."""

    token: str | None = None
    read_only: bool = True
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def login_possible(self) -> bool:
        """Whether entering a token can unlock actions (the page shows a login box)."""
        return self.token is not None

    def is_operator(self, request: Request) -> bool:
        """May this request act (ignoring CSRF, which ``check_action`` adds)?"""
        if self.token is None:
            return not self.read_only
        presented = request.cookies.get(COOKIE, "")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            presented = auth[7:].strip()
        return bool(presented) and _same(presented, self.token)

    def check_origin(self, request: Request) -> None:
        """Refuse a request whose ``Origin`` is another site than the one it was sent to."""
        origin = request.headers.get("origin")
        if origin is None:
            return  # not a browser's cross-site request (curl, same-origin GET-like)
        # Behind a reverse proxy the Host header may name the upstream (nginx's default);
        # the proxy's X-Forwarded-Host then names the site the browser used. Accepting it
        # weakens nothing: a cross-site page cannot set that header without a preflight.
        hosts = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "")}
        if origin == "null" or urlsplit(origin).netloc not in hosts - {""}:
            raise Refusal(
                f"cross-origin request from {origin} refused (a proxy in front must pass "
                "the Host or X-Forwarded-Host the browser used)"
            )

    def check_csrf(self, request: Request) -> None:
        """Refuse a POST without the page's secret (origin first, then the header)."""
        self.check_origin(request)
        if not _same(request.headers.get(CSRF_HEADER, ""), self.csrf):
            raise Refusal("missing or wrong CSRF token: reload the console page")

    def check_action(self, request: Request) -> None:
        """Refuse unless the request may act and came from the console's page."""
        self.check_csrf(request)
        if not self.is_operator(request):
            if self.token is None:
                raise Refusal(
                    "the console is read-only (start it with --token or AWA_CONSOLE_TOKEN)"
                )
            raise Refusal("operator token missing or wrong: log in with the console's token")

    def check_login(self, request: Request, presented: str) -> None:
        """Refuse a login attempt (CSRF-checked like any POST) with a wrong token."""
        self.check_csrf(request)
        if self.token is None:
            raise Refusal("this console has no operator token to log in with")
        if not _same(presented, self.token):
            raise Refusal("wrong operator token")
