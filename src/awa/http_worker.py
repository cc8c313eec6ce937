"""HTTP workers: a job kind whose work is done by a remote HTTP endpoint.

``http_worker(client, "resize", "https://fn.example.com/resize", secret=...)`` registers an
awa-generated handler for ``resize``; a runtime serving the kind's queue runs it like any
handler. Each attempt POSTs one JSON document::

    {"job": {"id", "kind", "queue", "args", "attempt", "max_attempts"},
     "callback": {"id", "token", "url", "timeout_at"}}        (async mode only)

with headers ``Content-Type: application/json``, ``Awa-Job-Id``, ``Awa-Job-Attempt`` and,
with a ``secret``, ``Awa-Signature: t=<unix seconds>,v1=<HMAC-SHA256>`` over
``"<t>." + body`` (the ``awa.signing`` scheme; verify with
``awa.callbacks.verify_signature``).

- ``mode="sync"``: a 2xx answer completes the job with the response's JSON as its result
  (an empty body: ``None``; a body that is not JSON: ``{"status", "body"}``).
- ``mode="async"``: the handler first registers a callback (timing out after
  ``callback_timeout``), sends its id, token and resolve URL (``callback_url`` + ``/<id>``:
  where the callback ingress is mounted), and a 2xx answer parks the job until the remote
  function resolves the callback (or it times out and maintenance retries or fails the job).
  The remote may call back before it answers: the resolution is then applied at once.
  An ingress with a secret wants the resolution signed for its callback id
  (``awa.callbacks.sign_callback``, ``v2``), not the ``v1`` body signature awa sends here.
- Any other answer, a connection failure, or no complete answer within ``timeout`` seconds
  fails the attempt with ``HttpWorkerError``: the runtime's backoff and ``max_attempts``
  apply. A ``Retry-After`` header (seconds or HTTP date, capped at a day) on a non-2xx
  answer retries after exactly that delay instead (``awa.RetryAfter``). Redirects are not
  followed (a 3xx is a failure): the signed job goes only where it was bound.

Secrets in the URL (its userinfo, and query parameters named like ``token``, ``key``,
``secret``, ``password``, ``signature``, ``sig``, ``auth``, ``access_token``, ``api_key``...)
are shown as ``***`` wherever awa reports the URL: ``HttpWorkerError`` (message and ``url``),
the job's error records and so its ``job.failed`` event, ``repr`` and binding errors; their
values are also scrubbed from response snippets and transport error texts. httpx's own
``HTTP Request: POST <url>`` log line (logger ``httpx``, INFO) gets the same redaction
through a filter installed on that logger by the first binding. Secrets in the path cannot
be told apart from ordinary segments: send them as ``headers`` instead.

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

from awa.clock import Clock
from awa.errors import HttpWorkerError, ValidationError
from awa.handlers import HandlerRegistry, JobContext
from awa.http_redaction import install_log_filter, redact_url, scrub_secrets
from awa.outcomes import RetryAfter, WaitForCallback
from awa.signing import SIGNATURE_HEADER, sign_header
from awa.validation import encode_json, to_seconds

__all__ = [
    "ASYNC",
    "MODES",
    "SYNC",
    "HttpWorker",
    "http_worker",
    "retry_after_seconds",
]

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
    """One kind bound to one URL; calling it runs one attempt (it is the kind's handler).

    ``repr`` shows the URLs redacted and only the names of the extra headers: a binding is
    the kind of object that ends up in a log line, and both may carry credentials.
    """

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

    def __post_init__(self) -> None:
        install_log_filter()

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
            headers[SIGNATURE_HEADER] = sign_header(self.secret, timestamp, body)
        status, response_headers, data = await self._post(body, headers)
        if 200 <= status < 300:
            if callback is not None:
                return WaitForCallback(callback)
            return _result(status, data)
        # The remote knows the URL's secrets and may echo them (an error page quoting the
        # request); the snippet goes into the job's error record.
        reason = self._scrub(f"HTTP {status}: {data[:_SNIPPET].decode('utf-8', 'replace')}")
        delay = retry_after_seconds(response_headers.get("retry-after"), self.clock.now())
        if delay is not None:
            raise RetryAfter(delay, reason)
        raise self._error(reason, status)

    def __repr__(self) -> str:
        callback = None if self.callback_url is None else redact_url(self.callback_url)
        return (
            f"HttpWorker(kind={self.kind!r}, url={redact_url(self.url)!r}, mode={self.mode!r}, "
            f"timeout={self.timeout!r}, callback_url={callback!r}, "
            f"callback_timeout={self.callback_timeout!r}, max_response={self.max_response!r}, "
            f"headers={sorted(self.headers)!r})"
        )

    def _scrub(self, text: str) -> str:
        """``text`` without the URL's secrets (see ``scrub_secrets``)."""
        return scrub_secrets(text, self.url)

    def _error(self, message: str, status: int | None = None) -> HttpWorkerError:
        """The attempt's failure, naming the URL redacted (its message becomes the job's
        error record and the ``job.failed`` event)."""
        return HttpWorkerError(redact_url(self.url), self._scrub(message), status)

    async def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, httpx.Headers, bytes]:
        """POST and read at most ``max_response`` bytes, all within ``timeout``."""
        try:
            with anyio.fail_after(self.timeout):
                if self.http_client is not None:
                    return await self._exchange(self.http_client, body, headers)
                async with httpx.AsyncClient(timeout=self.timeout) as http:
                    return await self._exchange(http, body, headers)
        except TimeoutError:
            raise self._error(f"no answer within {self.timeout:g}s") from None
        except httpx.HTTPError as exc:
            # Not chained (``from None``): the runtime stores the traceback, and a chained
            # transport error's text is httpx's to word, URL included or not. Its type and
            # scrubbed text are in the message.
            detail = str(exc) or type(exc).__name__
            raise self._error(f"{type(exc).__name__}: {detail}") from None

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
                    raise self._error(
                        f"response larger than {self.max_response} bytes", response.status_code
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
        # The refused value is shown redacted: a URL is refused for its scheme or shape,
        # credentials and all, and ValidationError keeps ``value`` as an attribute too.
        shown = redact_url(value) if isinstance(value, str) else value
        raise ValidationError(name, shown, "expected an absolute http(s) URL")


def _result(status: int, data: bytes) -> Any:
    if not data.strip():
        return None
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return {"status": status, "body": data[:_SNIPPET].decode("utf-8", "replace")}
