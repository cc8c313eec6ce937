"""Console logins are rate-limited per client address (issue 17, ``console_guard``).

Against the real console app over uvicorn on loopback: five wrong tokens are refused with
403, the sixth attempt from that address gets 429 with a ``Retry-After`` within the
window, and so does the right token (a guesser must not learn which guess was right),
while another client address (a second loopback source address) still logs in. A bearer token on
``/api/session`` counts the same way, and a locked address is refused (429) even with the
right bearer token on an action. The window's end, the count of distinct guesses only and
the bound on tracked addresses are checked on the limiter with ``awa.FakeClock`` (the
clock abstraction the guard uses), not by sleeping a minute.
"""

from __future__ import annotations

import httpx
import pytest

import awa
from awa.web.console_guard import LoginLimiter, RateLimited
from support.console import csrf_of, served_console

TOKEN = "s3cret-operator-token"


async def test_wrong_tokens_lock_the_address_then_429_with_retry_after(database_url: str) -> None:
    async with served_console(database_url, token=TOKEN) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            csrf = csrf_of((await http.get("")).text)
            headers = {"x-csrf-token": csrf}
            for guess in range(5):
                bad = await http.post(
                    "/api/login", json={"token": f"guess{guess}"}, headers=headers
                )
                assert bad.status_code == 403, bad.text
            locked = await http.post("/api/login", json={"token": "guess5"}, headers=headers)
            assert locked.status_code == 429, locked.text
            assert 1 <= int(locked.headers["retry-after"]) <= 60
            assert "too many wrong tokens" in locked.json()["error"]  # JSON the page shows
            right = await http.post("/api/login", json={"token": TOKEN}, headers=headers)
            assert right.status_code == 429  # locked means locked, right token included
            assert "awa_console_token" not in http.cookies
            # A bearer token on an action is not a login: it is not what is limited.
            assert (await http.get("/api/session")).status_code == 200

        other = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(base_url=base, transport=other) as http:
            csrf = csrf_of((await http.get("")).text)
            login = await http.post(
                "/api/login", json={"token": TOKEN}, headers={"x-csrf-token": csrf}
            )
            assert login.status_code == 200, login.text
            assert "awa_console_token" in http.cookies


async def test_csrf_failures_are_not_counted_as_guesses(database_url: str) -> None:
    async with (
        served_console(database_url, token=TOKEN) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        for _ in range(8):
            refused = await http.post("/api/login", json={"token": "guess"})
            assert refused.status_code == 403  # no CSRF secret: refused before the token
        csrf = csrf_of((await http.get("")).text)
        login = await http.post("/api/login", json={"token": TOKEN}, headers={"x-csrf-token": csrf})
        assert login.status_code == 200


def test_the_window_slides_on_the_clock() -> None:
    clock = awa.FakeClock()
    limiter = LoginLimiter(attempts=3, window=60.0, clock=clock)
    for n in range(3):
        limiter.check("10.0.0.1")
        limiter.failed("10.0.0.1", f"guess{n}")
        clock.advance(10)
    with pytest.raises(RateLimited) as locked:
        limiter.check("10.0.0.1")
    assert locked.value.retry_after == 30  # the first failure (t=0) leaves at t=60; now t=30
    assert locked.value.headers == {"Retry-After": "30"}
    limiter.check("10.0.0.2")  # per address
    clock.advance(30)
    limiter.check("10.0.0.1")  # the oldest failure left the window: one more try
    limiter.failed("10.0.0.1", "guess3")
    with pytest.raises(RateLimited):
        limiter.check("10.0.0.1")


def test_tracked_addresses_are_bounded() -> None:
    clock = awa.FakeClock()
    limiter = LoginLimiter(attempts=1, window=60.0, clock=clock, max_addresses=100)
    for n in range(1000):
        limiter.failed(f"10.0.{n // 256}.{n % 256}", "guess")
    with pytest.raises(RateLimited):
        limiter.check("10.0.3.231")  # the most recent is still tracked
    limiter.check("10.0.0.0")  # the oldest was forgotten


def test_repeating_one_wrong_token_is_one_mistake() -> None:
    """A browser sending one stale cookie on every page load must not lock its operator
    out: only distinct guesses count."""
    limiter = LoginLimiter(attempts=2, window=60.0, clock=awa.FakeClock())
    for _ in range(10):
        limiter.failed("10.0.0.1", "stale-cookie")
    limiter.check("10.0.0.1")
    limiter.failed("10.0.0.1", "another")
    with pytest.raises(RateLimited):
        limiter.check("10.0.0.1")


async def test_bearer_guesses_count_and_a_locked_address_is_never_an_operator(
    database_url: str,
) -> None:
    """A token presented with any request is a guess: /api/session and actions must not be
    an unlimited oracle beside the limited login."""
    async with (
        served_console(database_url, token=TOKEN) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        csrf = csrf_of((await http.get("")).text)
        right = {"authorization": f"Bearer {TOKEN}", "x-csrf-token": csrf}
        session = await http.get("/api/session", headers=right)
        assert session.json()["operator"] is True
        for guess in range(5):
            wrong = {"authorization": f"Bearer guess{guess}"}
            assert (await http.get("/api/session", headers=wrong)).json()["operator"] is False
        assert (await http.get("/api/session", headers=right)).json()["operator"] is False
        action = await http.post("/api/queues/default/pause", headers=right)
        assert action.status_code == 429, action.text
        assert int(action.headers["retry-after"]) >= 1
