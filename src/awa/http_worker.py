"""HTTP workers: a job kind whose work is done by a remote HTTP endpoint.

``http_worker(client, "resize", "https://fn.example.com/resize", secret=...)`` registers an
awa-generated handler for ``resize``; a runtime serving the kind's queue runs it like any
handler. Each attempt POSTs one JSON document::

    {"job": {"id", "kind", "queue", "args", "attempt", "max_attempts"},
     "callback": {"id", "token", "url", "timeout_at"}}        (async mode only)

with headers ``Content-Type: application/json``, ``Awa-Job-Id``, ``Awa-Job-Attempt`` and,
with a ``secret``, ``Awa-Signature: t=<unix seconds>,v1=<HMAC-SHA256>`` over
``"<t>." + body`` (verify with ``awa.callbacks.verify_signature``).

- ``mode="sync"``: a 2xx answer completes the job with the response's JSON as its result
  (an empty body: ``None``; a body that is not JSON: ``{"status", "body"}``).
- ``mode="async"``: the handler first registers a callback (timing out after
  ``callback_timeout``), sends its id, token and resolve URL (``callback_url`` + ``/<id>``:
  where the callback ingress is mounted), and a 2xx answer parks the job until the remote
  function resolves the callback (or it times out and maintenance retries or fails the job).
  The remote may call back before it answers: the resolution is then applied at once.
- Any other answer, a connection failure, or no complete answer within ``timeout`` seconds
  fails the attempt with ``HttpWorkerError``: the runtime's backoff and ``max_attempts``
  apply. A ``Retry-After`` header (seconds or HTTP date, capped at a day) on a non-2xx
  answer retries after exactly that delay instead (``awa.RetryAfter``). Redirects are not
  followed (a 3xx is a failure): the signed job goes only where it was bound.

Responses larger than ``max_response`` bytes (default 1 MiB) fail the attempt. By default
each attempt uses its own ``httpx.AsyncClient``, closed when the attempt ends (a handler has
no lifecycle hook to close a shared one); pass ``http_client`` (yours to close) to pool
connections across attempts.
"""

from __future__ import annotations

import email.utils
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

import anyio
import httpx

from awa.callbacks import SIGNATURE_HEADER, sign_body
from awa.clock import Clock
from awa.errors import HttpWorkerError, ValidationError
from awa.handlers import HandlerRegistry, JobContext
from awa.model import RetryAfter, WaitForCallback, encode_json, to_seconds

__all__ = ["ASYNC", "MODES", "SYNC", "HttpWorker", "http_worker", "retry_after_seconds"]

SYNC: Final = "sync"
ASYNC: Final = "async"
MODES: Final = (SYNC, ASYNC)

#: Longest ``Retry-After`` honoured (seconds); longer requests are capped to this.
MAX_RETRY_AFTER: Final = 86400.0

_DEFAULT_MAX_RESPONSE: Final = 1024 * 1024
_SNIPPET: Final = 500


class SupportsRegistry(Protocol):
    """What ``http_worker`` needs from its client (``awa.Client`` has both)."""

    @property
    def registry(self) -> HandlerRegistry: ...

    @property
    def clock(self) -> Clock: ...


@dataclass(frozen=True)
class HttpWorker:
    """One kind bound to one URL; calling it runs one attempt (it is the kind's handler)."""

    kind: str
    url: str
    mode: str
    timeout: float
    clock: Clock = field(repr=False)
    secret: str | bytes | None = field(default=None, repr=False)
    callback_url: str | None = None
    callback_timeout: float = 3600.0
    max_response: int = _DEFAULT_MAX_RESPONSE
    headers: dict[str, str] = field(default_factory=dict)
    http_client: httpx.AsyncClient | None = field(default=None, repr=False)

    async def __call__(self, ctx: JobContext) -> Any:
        job = ctx.job
        document: dict[str, Any] = {
            "job": {
                "id": job.id,
                "kind": job.kind,
                "queue": job.queue,
                "args": job.args,
                "attempt": job.attempt,
                "max_attempts": job.max_attempts,
            }
        }
        callback = None
        if self.mode == ASYNC:
            callback = await ctx.register_callback(timeout=self.callback_timeout)
            assert self.callback_url is not None
            document["callback"] = {
                "id": callback.id,
                "token": callback.token,
                "url": f"{self.callback_url.rstrip('/')}/{callback.id}",
                "timeout_at": callback.timeout_at.isoformat(),
            }
        body = encode_json("request", document).encode()
        headers = {
            **self.headers,
            "content-type": "application/json",
            "user-agent": "awa-http-worker",
            "awa-job-id": str(job.id),
            "awa-job-attempt": str(job.attempt),
        }
        if self.secret is not None:
            timestamp = int(self.clock.now().timestamp())
            headers[SIGNATURE_HEADER] = sign_body(self.secret, body, timestamp)
        status, response_headers, data = await self._post(body, headers)
        if 200 <= status < 300:
            if callback is not None:
                return WaitForCallback(callback)
            return _result(status, data)
        reason = f"HTTP {status}: {data[:_SNIPPET].decode('utf-8', 'replace')}"
        delay = retry_after_seconds(response_headers.get("retry-after"), self.clock.now())
        if delay is not None:
            raise RetryAfter(delay, reason)
        raise HttpWorkerError(self.url, reason, status)

    async def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, httpx.Headers, bytes]:
        """POST and read at most ``max_response`` bytes, all within ``timeout``."""
        try:
            with anyio.fail_after(self.timeout):
                if self.http_client is not None:
                    return await self._exchange(self.http_client, body, headers)
                async with httpx.AsyncClient(timeout=self.timeout) as http:
                    return await self._exchange(http, body, headers)
        except TimeoutError:
            raise HttpWorkerError(self.url, f"no answer within {self.timeout:g}s") from None
        except httpx.HTTPError as exc:
            detail = str(exc) or type(exc).__name__
            raise HttpWorkerError(self.url, f"{type(exc).__name__}: {detail}") from exc

    async def _exchange(
        self, http: httpx.AsyncClient, body: bytes, headers: dict[str, str]
    ) -> tuple[int, httpx.Headers, bytes]:
        async with http.stream(
            "POST", self.url, content=body, headers=headers, follow_redirects=False
        ) as response:
            data = bytearray()
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > self.max_response:
                    raise HttpWorkerError(
                        self.url,
                        f"response larger than {self.max_response} bytes",
                        response.status_code,
                    )
            return response.status_code, response.headers, bytes(data)


def http_worker(
    client: SupportsRegistry,
    kind: str,
    url: str,
    *,
    mode: str = SYNC,
    timeout: float | timedelta = 30.0,
    secret: str | bytes | None = None,
    queue: str = "default",
    callback_url: str | None = None,
    callback_timeout: float | timedelta = 3600.0,
    max_response: int = _DEFAULT_MAX_RESPONSE,
    headers: dict[str, str] | None = None,
    http_client: httpx.AsyncClient | None = None,
) -> HttpWorker:
    """Bind ``kind`` to ``url`` on ``client`` (see the module docstring); returns the
    binding, already registered as the kind's handler for ``queue``."""
    if mode not in MODES:
        raise ValidationError("mode", mode, f"expected one of: {', '.join(MODES)}")
    _check_url("url", url)
    seconds = to_seconds("timeout", timeout)
    wait = to_seconds("callback_timeout", callback_timeout)
    assert seconds is not None and wait is not None
    if mode == ASYNC:
        if callback_url is None:
            raise ValidationError(
                "callback_url", None, "async mode needs the URL where the ingress is mounted"
            )
        _check_url("callback_url", callback_url)
    if secret is not None and (not isinstance(secret, str | bytes) or not secret):
        raise ValidationError("secret", "<hidden>", "expected a non-empty str or bytes")
    if isinstance(max_response, bool) or not isinstance(max_response, int) or max_response < 1:
        raise ValidationError("max_response", max_response, "expected a positive byte count")
    binding = HttpWorker(
        kind=kind,
        url=url,
        mode=mode,
        timeout=seconds,
        clock=client.clock,
        secret=secret,
        callback_url=callback_url,
        callback_timeout=wait,
        max_response=max_response,
        headers=dict(headers or {}),
        http_client=http_client,
    )
    client.registry.register(kind, binding, queue=queue)
    return binding


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A ``Retry-After`` header as seconds from ``now`` (capped at ``MAX_RETRY_AFTER``), or
    None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER)


def _check_url(name: str, value: Any) -> None:
    try:
        parsed = httpx.URL(value) if isinstance(value, str) else None
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValidationError(name, value, "expected an absolute http(s) URL")


def _result(status: int, data: bytes) -> Any:
    if not data.strip():
        return None
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return {"status": status, "body": data[:_SNIPPET].decode("utf-8", "replace")}
