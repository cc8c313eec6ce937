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

Comparisons are constant-time (``hmac.compare_digest``): the token is a password, and like
a password it must not be guessable at network speed: ``LoginLimiter`` allows a few wrong
tokens per client address per window (5 per minute by default), whether sent to the login
or presented with any request (cookie, bearer), then answers 429 with ``Retry-After`` to
every login and action from that address, right token included (otherwise a guesser
would still learn which guess was right), until the oldest failure leaves the window.
Time comes from ``awa.clock`` so tests move it instead of sleeping a minute.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request

from awa.clock import Clock, SystemClock

__all__ = ["COOKIE", "CSRF_HEADER", "Guard", "LoginLimiter", "RateLimited", "Refusal"]

#: The cookie that carries the operator token from the browser.
COOKIE = "awa_console_token"
#: The header a POST must echo the page's CSRF secret in.
CSRF_HEADER = "x-csrf-token"


class Refusal(Exception):
    """An action refused (HTTP 403) and why, in words the operator can act on."""


class RateLimited(HTTPException):
    """Too many wrong tokens from one address: HTTP 429 with ``Retry-After`` (seconds).

    A Starlette ``HTTPException`` (not a ``Refusal``), so any Starlette app answers it with
    its status and header without a handler of its own."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(
            429,
            f"too many wrong operator tokens from this address: retry in {self.retry_after} s",
            headers={"Retry-After": str(self.retry_after)},
        )


@dataclass
class LoginLimiter:
    """Wrong tokens per client address in a sliding window.

    ``attempts`` *distinct* wrong tokens within ``window`` seconds lock the address until
    the oldest of them is ``window`` old. Distinct, because a guesser must vary its guesses
    while a browser repeating one stale cookie (the token changed since it logged in) on
    every page load is one mistake, not an attack, and must not lock its operator out for
    good. Only a digest of each guess is kept. Memory is bounded: at most
    ``max_addresses`` addresses are tracked; beyond that the least recently failing one is
    forgotten (a flood of spoofed addresses cannot exhaust memory; it can at worst unlock
    an old address early)."""

    attempts: int = 5
    window: float = 60.0
    clock: Clock = field(default_factory=SystemClock)
    max_addresses: int = 10_000
    _failures: dict[str, deque[tuple[float, bytes]]] = field(default_factory=dict, repr=False)

    def _recent(self, address: str) -> deque[tuple[float, bytes]]:
        failures = self._failures.get(address, deque())
        horizon = self.clock.monotonic() - self.window
        while failures and failures[0][0] <= horizon:
            failures.popleft()
        if not failures:
            self._failures.pop(address, None)
        return failures

    def retry_after(self, address: str) -> float | None:
        """Seconds until ``address`` may try again; ``None`` while it has attempts left."""
        failures = self._recent(address)
        if len(failures) >= self.attempts:
            return failures[0][0] + self.window - self.clock.monotonic()
        return None

    def check(self, address: str) -> None:
        """Raise ``RateLimited`` while ``address`` has used up its attempts."""
        wait = self.retry_after(address)
        if wait is not None:
            raise RateLimited(wait)

    def failed(self, address: str, guess: str) -> None:
        """Count the wrong token ``guess`` from ``address`` (once per window)."""
        digest = hashlib.sha256(guess.encode()).digest()[:16]
        failures = self._recent(address)
        if any(seen == digest for _, seen in failures):
            return
        failures.append((self.clock.monotonic(), digest))
        self._failures.pop(address, None)  # re-insert: dict order is recency of failure
        self._failures[address] = failures
        while len(self._failures) > self.max_addresses:
            del self._failures[next(iter(self._failures))]


def _client_address(request: Request) -> str:
    # The peer address, never X-Forwarded-For: a header the guesser sets is no identity.
    # Behind a reverse proxy every client shares the proxy's address (and its limit).
    return request.client.host if request.client is not None else "unknown"


def _presented(request: Request) -> str:
    """The operator token a request carries: ``Authorization: Bearer``, else the cookie."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.cookies.get(COOKIE, "")


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass
class Guard:
    """The console's access policy: ``token`` (None: no operator login) and ``read_only``."""

    token: str | None = None
    read_only: bool = True
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    limiter: LoginLimiter = field(default_factory=LoginLimiter)

    @property
    def login_possible(self) -> bool:
        """Whether entering a token can unlock actions (the page shows a login box)."""
        return self.token is not None

    def is_operator(self, request: Request) -> bool:
        """May this request act (ignoring CSRF, which ``check_action`` adds)?

        A token presented with the request (cookie or bearer) is a guess like a login: a
        wrong one counts against the address, and a locked address is never an operator,
        whatever it presents. Otherwise ``/api/session`` or an action answering 403 would
        be an unlimited oracle beside the limited login."""
        if self.token is None:
            return not self.read_only
        presented = _presented(request)
        if not presented:
            return False
        address = _client_address(request)
        if self.limiter.retry_after(address) is not None:
            return False
        if _same(presented, self.token):
            return True
        self.limiter.failed(address, presented)
        return False

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
            if self.token is not None and _presented(request):
                self.limiter.check(_client_address(request))  # 429 once locked
            if self.token is None:
                raise Refusal(
                    "the console is read-only (start it with --token or AWA_CONSOLE_TOKEN)"
                )
            raise Refusal("operator token missing or wrong: log in with the console's token")

    def check_login(self, request: Request, presented: str) -> None:
        """Refuse a login attempt (CSRF-checked like any POST) with a wrong token, and
        every attempt (``RateLimited``) from an address that sent too many wrong ones."""
        self.check_csrf(request)
        if self.token is None:
            raise Refusal("this console has no operator token to log in with")
        address = _client_address(request)
        self.limiter.check(address)
        if not _same(presented, self.token):
            self.limiter.failed(address, presented)
            raise Refusal("wrong operator token")
