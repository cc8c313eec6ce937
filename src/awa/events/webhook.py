"""``WebhookSink``: POST each event as JSON to an HTTP endpoint, signed with HMAC-SHA256.

Request: ``POST <url>`` with body ``Event.body()`` (``{"id", "kind", "occurred_at",
"data"}``) and headers:

- ``Idempotency-Key`` and ``X-Awa-Event-Id``: the event id; delivery is *at least once*
  (a timeout after the receiver processed the request is retried), so receivers should
  deduplicate on it;
- ``X-Awa-Event-Kind``: e.g. ``job.failed``;
- ``X-Awa-Timestamp``: Unix seconds when the request was signed;
- ``X-Awa-Signature``: ``sha256=<hex>``, HMAC-SHA256 with the shared secret over
  ``"<timestamp>." + body`` (the ``awa.signing`` scheme, ADR 019). Receivers check it with
  ``verify_signature`` (constant-time, with a freshness window against replays).

Outcome: any 2xx is delivered. 408, 425, 429 and 5xx, connection errors and timeouts mean
the endpoint is unavailable (``SinkUnavailable``; ``Retry-After`` in seconds is honoured);
any other status refuses this event (``EventRejected``). Redirects are not followed (a
redirect usually means a mistyped URL). Error messages never include the URL, which may
carry credentials.

Timeouts: ``connect_timeout`` (default 2 s) and ``timeout`` for each read, write and pool
wait (default 5 s), so a black-holed endpoint costs the delivery branch a bounded time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime

import httpx

from awa import signing
from awa.clock import Clock, SystemClock
from awa.errors import ValidationError
from awa.events.model import Event, check_kinds
from awa.events.sink import Deliver, EventRejected, SinkUnavailable, check_sink_name

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WebhookSink", "sign", "verify_signature"]

SIGNATURE_HEADER = "X-Awa-Signature"
TIMESTAMP_HEADER = "X-Awa-Timestamp"

_UNAVAILABLE = frozenset({408, 425, 429})
_DETAIL_LIMIT = 200


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Awa-Signature`` value for ``body`` signed at ``timestamp``: the
    ``awa.signing`` MAC over the same message as every awa signature, in the webhook's
    own (older) header format."""
    message = signing.signed_message(timestamp, body)
    return signing.WEBHOOK_PREFIX + signing.mac(signing.key_bytes(secret), message)


def verify_signature(
    secret: str | bytes,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    tolerance: float = 300.0,
    now: datetime | None = None,
) -> bool:
    """True when ``signature`` is ours for ``body`` and ``timestamp`` is within
    ``tolerance`` seconds of ``now`` (default: the system clock). Compares in constant time
    (``signing.matches_any``, i.e. ``hmac.compare_digest``)."""
    try:
        signed_at = float(timestamp)
    except ValueError:
        return False
    current = (now or SystemClock().now()).timestamp()
    if abs(current - signed_at) > tolerance:
        return False
    return signing.matches_any([sign(secret, timestamp, body)], [signature])


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: ignore it and use our own backoff
    return seconds if seconds >= 0 else None


class WebhookSink:
    """Deliver events to ``url`` (see the module docstring for the request and outcomes)."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        secret: str | bytes,
        kinds: Iterable[str] | None = None,
        timeout: float = 5.0,
        connect_timeout: float = 2.0,
        headers: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._name = check_sink_name(name)
        self._kinds = check_kinds(f"sinks[{name!r}].kinds", kinds)
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            # Never the URL itself in the error: it may carry credentials.
            raise ValidationError(f"sinks[{name!r}].url", "<redacted>", str(exc)) from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValidationError(f"sinks[{name!r}].url", "<redacted>", "expected an http(s) URL")
        if not secret:
            raise ValidationError(f"sinks[{name!r}].secret", "", "expected a non-empty secret")
        for field_name, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if not isinstance(value, int | float) or value <= 0:
                raise ValidationError(f"sinks[{name!r}].{field_name}", value, "seconds > 0")
        self.url = url
        self._secret = signing.key_bytes(secret)
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._headers = dict(headers or {})
        self._clock = clock or SystemClock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def kinds(self) -> frozenset[str] | None:
        return self._kinds

    def __repr__(self) -> str:
        return f"<WebhookSink {self._name} kinds={sorted(self._kinds or ['*'])}>"

    @asynccontextmanager
    async def open(self) -> AsyncIterator[Deliver]:
        async with httpx.AsyncClient(
            timeout=self._timeout, follow_redirects=False, headers=self._headers
        ) as client:

            async def deliver(event: Event) -> None:
                await self._post(client, event)

            yield deliver

    async def _post(self, client: httpx.AsyncClient, event: Event) -> None:
        body = event.body()
        timestamp = str(int(self._clock.now().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "awa-events/1",
            "Idempotency-Key": event.idempotency_key,
            "X-Awa-Event-Id": str(event.id),
            "X-Awa-Event-Kind": event.kind,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
        }
        try:
            response = await client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise SinkUnavailable(f"timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise SinkUnavailable(f"{type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        text = " ".join(response.text.split())[:_DETAIL_LIMIT]
        detail = f"HTTP {status}" + (f": {text}" if text else "")
        if status >= 500 or status in _UNAVAILABLE:
            raise SinkUnavailable(
                detail, retry_after=_retry_after(response.headers.get("retry-after"))
            )
        raise EventRejected(detail)
