"""Resolving callbacks (external waits) from application code, and the HMAC signatures that
awa's HTTP surfaces use.

A handler parks its job on a callback (``ctx.register_callback`` then
``return awa.WaitForCallback(callback)``) and hands the callback's id and token to an
external system. That system answers through ``Callbacks`` (here) or the HTTP ingress
(``awa.web.ingress``, which calls this):

- ``complete(id, token, payload)``: the job completes with ``payload`` as its result, or,
  for a callback registered with ``resume=True``, runs again with ``ctx.callback.payload``;
- ``fail(id, token, error)``: the job fails for good, the error recorded;
- ``retry(id, token, delay=None)``: this attempt failed; the job is retried (after
  ``delay``, default 1 s x 2^(attempt-1) capped at an hour) or fails when no attempt is left;
- ``heartbeat(id, token, extend_by)``: the wait goes on; the timeout moves to
  ``now + extend_by``.

A refused call raises a ``CallbackError`` and changes nothing: ``CallbackNotFound``,
``CallbackTokenInvalid``, ``CallbackAlreadyResolved`` (resolving twice),
``CallbackExpired`` (timed out, or the job moved on). Protocol and threat model:
``adr/008-callbacks-and-http-workers.md``.

Signatures: header ``Awa-Signature: t=<unix seconds>,<scheme>=<hex HMAC-SHA256>``, the
layout Stripe popularised. Two schemes:

- ``v1`` over ``"<t>." + body`` (``sign_body`` / ``verify_signature``): what HTTP workers
  send to their targets (the body names the job and the callback);
- ``v2`` over ``"<t>.<callback id>." + body`` (``sign_callback`` /
  ``verify_callback_signature``): what the ingress requires. The callback id travels in the
  URL, not the body, so a body-only signature for one callback would be accepted on any
  other: a captured signed request could be replayed onto another id whose token the
  attacker holds. The ingress refuses ``v1``.

The timestamp bounds replays to a tolerance window; several entries, or several secrets on
the verifying side, allow a secret to be rotated without downtime.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from awa.clock import Clock
from awa.errors import CallbackNotFound, ValidationError
from awa.store import Store
from awa.store.callbacks import (
    COMPLETE,
    FAIL,
    HEARTBEAT,
    RETRY,
    CallbackResolution,
    CallbackStore,
)
from awa.validation import encode_json, to_seconds

__all__ = [
    "ACTIONS",
    "SIGNATURE_HEADER",
    "SIGNATURE_TOLERANCE",
    "CallbackResolution",
    "Callbacks",
    "Secret",
    "sign_body",
    "sign_callback",
    "verify_callback_signature",
    "verify_signature",
]

#: What a resolution may ask for.
ACTIONS: Final = (COMPLETE, FAIL, RETRY, HEARTBEAT)

#: Header carrying the body signature, on requests to HTTP workers and to the ingress.
SIGNATURE_HEADER: Final = "Awa-Signature"

#: How far (seconds) a signature's timestamp may be from the verifier's clock.
SIGNATURE_TOLERANCE: Final = 300.0

_MAX_ERROR_LENGTH: Final = 2000

#: A shared secret, or several (verification accepts any of them: rotation).
Secret = str | bytes | Sequence[str | bytes]


class SupportsStore(Protocol):
    """What ``Callbacks`` needs from its client (``awa.Client`` has both)."""

    @property
    def store(self) -> Store: ...

    @property
    def clock(self) -> Clock: ...


class Callbacks:
    """Resolve callbacks: ``Callbacks(client).complete(callback_id, token, payload)``.

    The client is read at each call, so this may be built before the client connects.
    """

    def __init__(self, client: SupportsStore) -> None:
        self._client = client

    @property
    def clock(self) -> Clock:
        """The client's clock (the ingress checks signature timestamps against it)."""
        return self._client.clock

    def _store(self) -> CallbackStore:
        store = self._client.store
        return store.sibling(CallbackStore)

    async def complete(
        self, callback_id: str | uuid.UUID, token: str, payload: Any = None
    ) -> CallbackResolution:
        """The external work succeeded with ``payload`` (any JSON value)."""
        return await self._resolve(callback_id, token, COMPLETE, payload=payload)

    async def fail(
        self,
        callback_id: str | uuid.UUID,
        token: str,
        error: str = "failed by callback",
        payload: Any = None,
    ) -> CallbackResolution:
        """The external work failed for good: the job fails, ``error`` (and ``payload``, when
        given) recorded in its errors."""
        return await self._resolve(callback_id, token, FAIL, payload=payload, error=error)

    async def retry(
        self,
        callback_id: str | uuid.UUID,
        token: str,
        *,
        delay: float | timedelta | None = None,
        error: str = "retry requested by callback",
        payload: Any = None,
    ) -> CallbackResolution:
        """This attempt failed: retry the job after ``delay`` seconds (default backoff), or
        fail it when it has no attempt left."""
        seconds = to_seconds("delay", delay, allow_zero=True)
        return await self._resolve(
            callback_id, token, RETRY, payload=payload, error=error, retry_delay=seconds
        )

    async def heartbeat(
        self, callback_id: str | uuid.UUID, token: str, extend_by: float | timedelta
    ) -> datetime:
        """Still working: move the callback's timeout to ``now + extend_by``; returns it."""
        seconds = to_seconds("extend_by", extend_by)
        resolution = await self._resolve(callback_id, token, HEARTBEAT, extend_by=seconds)
        return resolution.timeout_at

    async def _resolve(
        self,
        callback_id: str | uuid.UUID,
        token: str,
        action: str,
        *,
        payload: Any = None,
        error: str | None = None,
        retry_delay: float | None = None,
        extend_by: float | None = None,
    ) -> CallbackResolution:
        parsed = parse_callback_id(callback_id)
        if not isinstance(token, str) or not token:
            raise ValidationError("token", "<hidden>", "expected the callback's token (text)")
        if error is not None and (not isinstance(error, str) or len(error) > _MAX_ERROR_LENGTH):
            raise ValidationError("error", error, f"expected text of at most {_MAX_ERROR_LENGTH}")
        text = None if payload is None else encode_json("payload", payload)
        return await self._store().resolve(
            parsed,
            token,
            action,
            payload=text,
            error=error,
            retry_delay=retry_delay,
            extend_by=extend_by,
            now=self._client.clock.db_now(),
        )


def parse_callback_id(value: str | uuid.UUID) -> uuid.UUID:
    """A callback id as a UUID; text that is not one cannot name a callback."""
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise ValidationError("callback_id", value, "expected a UUID")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise CallbackNotFound(value[:64]) from None


# ------------------------------------------------------------------------------ signing


def _keys(secret: Secret) -> list[bytes]:
    items: Sequence[str | bytes] = [secret] if isinstance(secret, str | bytes) else secret
    keys = [s.encode() if isinstance(s, str) else bytes(s) for s in items]
    if not keys or not all(keys):
        raise ValidationError("secret", "<hidden>", "expected a non-empty secret")
    return keys


def sign_body(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The ``Awa-Signature`` header value (``v1``) for ``body`` sent at ``timestamp`` (unix
    seconds): what HTTP workers send. Not accepted by the ingress (see ``sign_callback``)."""
    message = str(timestamp).encode() + b"." + body
    return f"t={timestamp},v1={_mac(_keys(secret)[0], message)}"


def sign_callback(
    secret: str | bytes, callback_id: str | uuid.UUID, body: bytes, timestamp: int
) -> str:
    """The ``Awa-Signature`` header value (``v2``) for a request to the ingress that resolves
    ``callback_id`` with ``body``, sent at ``timestamp`` (unix seconds)."""
    parsed = parse_callback_id(callback_id)
    return f"t={timestamp},v2={_mac(_keys(secret)[0], _callback_message(timestamp, parsed, body))}"


def verify_signature(
    secret: Secret,
    body: bytes,
    header: str | None,
    now: float,
    tolerance: float = SIGNATURE_TOLERANCE,
) -> bool:
    """True when ``header`` signs ``body`` (``v1``) with one of the secrets, within
    ``tolerance`` seconds of ``now``. Compares in constant time; a malformed header is
    simply False."""
    timestamp, macs = _parse_header(header, "v1", now, tolerance)
    if timestamp is None:
        return False
    return _any_match(secret, str(timestamp).encode() + b"." + body, macs)


def verify_callback_signature(
    secret: Secret,
    callback_id: str | uuid.UUID,
    body: bytes,
    header: str | None,
    now: float,
    tolerance: float = SIGNATURE_TOLERANCE,
) -> bool:
    """True when ``header`` signs ``body`` *for* ``callback_id`` (``v2``) with one of the
    secrets, within ``tolerance`` seconds of ``now``. Compares in constant time; a malformed
    header or id is simply False."""
    try:
        parsed = parse_callback_id(callback_id)
    except (CallbackNotFound, ValidationError):
        return False
    timestamp, macs = _parse_header(header, "v2", now, tolerance)
    if timestamp is None:
        return False
    return _any_match(secret, _callback_message(timestamp, parsed, body), macs)


def _callback_message(timestamp: int, callback_id: uuid.UUID, body: bytes) -> bytes:
    # The canonical (lower-case, hyphenated) id: signer and verifier agree however the id
    # was spelled in the URL.
    return f"{timestamp}.{callback_id}.".encode() + body


def _mac(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _parse_header(
    header: str | None, scheme: str, now: float, tolerance: float
) -> tuple[int | None, list[str]]:
    """The timestamp and the ``scheme`` MACs of ``header``; the timestamp is None when the
    header is malformed, has no such MAC, or is outside the tolerance window."""
    if not header:
        return None, []
    timestamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        # ASCII decimals only ("²" is isdigit but not int-able), and short enough to be a
        # Unix time: a 5,000-digit value would make int() and the subtraction below raise.
        if name == "t" and value.isascii() and value.isdecimal() and len(value) <= 12:
            timestamp = int(value)
        elif name == scheme and value and value.isascii():
            # hmac.compare_digest raises TypeError on non-ASCII text: such a MAC is simply
            # wrong, not a server error (the ingress decodes headers as latin-1).
            macs.append(value)
    if timestamp is None or not macs or abs(now - timestamp) > tolerance:
        return None, []
    return timestamp, macs


def _any_match(secret: Secret, message: bytes, macs: list[str]) -> bool:
    expected = [_mac(k, message) for k in _keys(secret)]
    # Evaluate every pair (no early exit) so timing does not say which entry matched.
    matches = [hmac.compare_digest(e, m) for e in expected for m in macs]
    return any(matches)
