"""The one HMAC signing scheme behind every signed request awa sends or receives.

Three surfaces sign: event webhooks (``awa.events.webhook``), HTTP workers
(``awa.http_worker``) and the callback ingress (``awa.callbacks``, ``awa.web.ingress``).
They share one scheme so a fix or an audit happens once (ADR 019):

- the MAC is HMAC-SHA256, hex-encoded;
- the signed message is ``"<unix seconds>." [+ "<bound to>."] + body``: the timestamp bounds
  replays to a tolerance window, and ``bound_to`` ties a signature to what the URL names
  (a callback id) so it cannot be replayed onto another resource;
- a secret may be one value or several (the verifier accepts any: rotation without
  downtime);
- every comparison is ``hmac.compare_digest``, over every (expected, given) pair without an
  early exit, so timing says neither how much matched nor which entry did.

The versioned header ``Awa-Signature: t=<unix seconds>,<version>=<mac>[,<version>=<mac>]``
(the layout Stripe popularised) carries ``v1`` (body only: HTTP workers) or ``v2`` (bound
to a callback id: the ingress). Webhooks predate it and keep their own wire format
(``X-Awa-Timestamp`` plus ``X-Awa-Signature: sha256=<mac>``) over the same message and MAC;
``WEBHOOK_PREFIX`` is its version marker.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from typing import Final

from awa.errors import ValidationError

__all__ = [
    "BODY_ONLY",
    "BOUND",
    "SIGNATURE_HEADER",
    "SIGNATURE_TOLERANCE",
    "WEBHOOK_PREFIX",
    "Secret",
    "key_bytes",
    "mac",
    "matches_any",
    "parse_header",
    "secret_keys",
    "sign_header",
    "signed_message",
    "verify_header",
]

#: Header carrying the versioned signature, on requests to HTTP workers and to the ingress.
SIGNATURE_HEADER: Final = "Awa-Signature"

#: How far (seconds) a signature's timestamp may be from the verifier's clock.
SIGNATURE_TOLERANCE: Final = 300.0

#: Header version of a body-only signature (what HTTP workers send).
BODY_ONLY: Final = "v1"

#: Header version of a signature bound to a callback id (what the ingress requires).
BOUND: Final = "v2"

#: The webhook signature's version marker: ``X-Awa-Signature: sha256=<mac>``.
WEBHOOK_PREFIX: Final = "sha256="

#: A shared secret, or several (verification accepts any of them: rotation).
Secret = str | bytes | Sequence[str | bytes]

# A Unix time in seconds has at most 12 digits for the next 30,000 years; a longer value
# would make int() and the freshness subtraction slow or overflow.
_MAX_TIMESTAMP_DIGITS: Final = 12


def key_bytes(secret: str | bytes) -> bytes:
    """One secret as HMAC key bytes (text is UTF-8 encoded)."""
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def secret_keys(secret: Secret) -> list[bytes]:
    """Every key of ``secret`` (one value or several); an empty secret is refused, since an
    empty HMAC key would let anyone sign."""
    items: Sequence[str | bytes] = [secret] if isinstance(secret, str | bytes) else secret
    keys = [key_bytes(s) for s in items]
    if not keys or not all(keys):
        raise ValidationError("secret", "<hidden>", "expected a non-empty secret")
    return keys


def signed_message(timestamp: int | str, body: bytes, *, bound_to: str | None = None) -> bytes:
    """The bytes a signature covers: ``"<timestamp>." [+ "<bound_to>."] + body``."""
    prefix = f"{timestamp}." if bound_to is None else f"{timestamp}.{bound_to}."
    return prefix.encode() + body


def mac(key: bytes, message: bytes) -> str:
    """HMAC-SHA256 of ``message`` under ``key``, hex-encoded."""
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def matches_any(expected: Iterable[str], given: Iterable[str]) -> bool:
    """True when one given MAC equals one expected MAC, compared in constant time.

    Every pair is compared (no early exit) so timing does not say which entry matched. Like
    ``hmac.compare_digest``, raises ``TypeError`` for non-ASCII text: callers that read MACs
    from untrusted headers drop those first (see ``parse_header``)."""
    given = list(given)
    matches = [hmac.compare_digest(e, g) for e in expected for g in given]
    return any(matches)


def sign_header(secret: Secret, timestamp: int, body: bytes, *, bound_to: str | None = None) -> str:
    """The ``Awa-Signature`` value for ``body`` sent at ``timestamp`` (Unix seconds), signed
    with the first key of ``secret``: ``v1`` for a body-only signature, ``v2`` when
    ``bound_to`` names what the signature is for."""
    version = BODY_ONLY if bound_to is None else BOUND
    message = signed_message(timestamp, body, bound_to=bound_to)
    return f"t={timestamp},{version}={mac(secret_keys(secret)[0], message)}"


def parse_header(
    header: str | None, version: str, now: float, tolerance: float
) -> tuple[int | None, list[str]]:
    """The timestamp and the ``version`` MACs of an ``Awa-Signature`` header; the timestamp
    is None when the header is malformed, has no such MAC, or is outside the tolerance
    window. Never raises, whatever the header holds."""
    if not header:
        return None, []
    timestamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        # ASCII decimals only ("²" is isdigit but not int-able), and short enough to be a
        # Unix time.
        if (
            name == "t"
            and value.isascii()
            and value.isdecimal()
            and len(value) <= _MAX_TIMESTAMP_DIGITS
        ):
            timestamp = int(value)
        elif name == version and value and value.isascii():
            # hmac.compare_digest raises TypeError on non-ASCII text: such a MAC is simply
            # wrong, not a server error (the ingress decodes headers as latin-1).
            macs.append(value)
    if timestamp is None or not macs or abs(now - timestamp) > tolerance:
        return None, []
    return timestamp, macs


def verify_header(
    secret: Secret,
    body: bytes,
    header: str | None,
    now: float,
    tolerance: float = SIGNATURE_TOLERANCE,
    *,
    bound_to: str | None = None,
) -> bool:
    """True when ``header`` signs ``body`` (``v1``, or ``v2`` for ``bound_to``) with one of
    the keys of ``secret``, within ``tolerance`` seconds of ``now``. A malformed header is
    simply False; an empty secret raises ``ValidationError`` (a configuration error)."""
    version = BODY_ONLY if bound_to is None else BOUND
    timestamp, macs = parse_header(header, version, now, tolerance)
    if timestamp is None:
        return False
    message = signed_message(timestamp, body, bound_to=bound_to)
    return matches_any((mac(k, message) for k in secret_keys(secret)), macs)
