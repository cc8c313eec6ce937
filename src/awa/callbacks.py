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

Signatures (the scheme is ``awa.signing``'s, ADR 019): header ``Awa-Signature: t=<unix
seconds>,<version>=<hex HMAC-SHA256>``, the layout Stripe popularised. Two versions:

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

import uuid
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from awa import signing
from awa.clock import Clock
from awa.errors import CallbackNotFound, ValidationError
from awa.signing import SIGNATURE_HEADER, SIGNATURE_TOLERANCE, Secret
from awa.store import Store
from awa.store.callbacks import (
    COMPLETE,
    FAIL,
    HEARTBEAT,
    RETRY,
    CallbackResolution,
)
from awa.store.callbacks import (
    Callbacks as StoreCallbacks,
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

_MAX_ERROR_LENGTH: Final = 2000


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

    def _store(self) -> StoreCallbacks:
        return self._client.store.callbacks

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
        return await self._store().resolve_callback(
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
# The scheme is awa.signing's; these bind it to callbacks (v2 signs the canonical id).


def sign_body(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The ``Awa-Signature`` header value (``v1``) for ``body`` sent at ``timestamp`` (unix
    seconds): what HTTP workers send. Not accepted by the ingress (see ``sign_callback``)."""
    return signing.sign_header(secret, timestamp, body)


def sign_callback(
    secret: str | bytes, callback_id: str | uuid.UUID, body: bytes, timestamp: int
) -> str:
    """The ``Awa-Signature`` header value (``v2``) for a request to the ingress that resolves
    ``callback_id`` with ``body``, sent at ``timestamp`` (unix seconds)."""
    parsed = parse_callback_id(callback_id)
    return signing.sign_header(secret, timestamp, body, bound_to=str(parsed))


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
    return signing.verify_header(secret, body, header, now, tolerance)


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
    # The canonical (lower-case, hyphenated) id: signer and verifier agree however the id
    # was spelled in the URL.
    return signing.verify_header(secret, body, header, now, tolerance, bound_to=str(parsed))
