"""The callback ingress: a small ASGI application with one endpoint that resolves callbacks.

Mount it in an existing app (Starlette/FastAPI: ``app.mount("/awa/callbacks", ingress)``)
or serve it alone (``awa.web.serve(ingress, host, port)``, uvicorn). No web framework.

``POST /<callback_id>`` (relative to where it is mounted), headers
``Authorization: Bearer <token>`` and, when a secret is configured,
``Awa-Signature: t=<unix seconds>,v2=<hex HMAC-SHA256 of "<t>.<callback id>." + body>``
(``awa.callbacks.sign_callback``; the id in its canonical lower-case form). The id is signed
so that a captured signed request cannot be replayed onto another callback; body-only
``v1`` signatures are refused. JSON body::

    {"action": "complete", "payload": <any JSON>}
    {"action": "fail", "error": "why", "payload": <any JSON, optional>}
    {"action": "retry", "delay": 30, "error": "why", "payload": ...}   (delay optional)
    {"action": "heartbeat", "extend_by": 600}

Answers (JSON ``{"error": code, "message": ...}`` on refusal; a refusal changes nothing):

- 200 ``{"callback_id", "state"}`` (and ``timeout_at`` after a heartbeat);
- 400 body is not JSON, or not one of the shapes above; 401 no bearer token, or the
  signature is missing, wrong, for another callback or outside the tolerance window;
- 404 ``not_found``: no callback with this id *and* this token (an unknown id and a wrong
  token get the same answer, byte for byte, so the ingress does not say which ids exist;
  RFC 9110 15.5.4 allows 404 for exactly this), or a path that is not ``/<uuid>``;
- 405 not POST;
- 409 already resolved; 410 expired (timed out, or the job no longer waits for it);
- 413 body larger than ``max_body`` (checked on the declared length and while reading);
- 503 the database is unreachable (retry later).

What it never does: list or describe jobs, say which job a callback belongs to, say
whether a callback exists to a caller without its token, or echo a token. Order of checks:
method, path, size, signature (cheap, before any database work), JSON shape, then the
database (existence, token, state, expiry) in one transaction.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
from collections.abc import Sequence
from typing import Any, Final

from awa.callbacks import ACTIONS, Callbacks, verify_callback_signature
from awa.errors import (
    CallbackAlreadyResolved,
    CallbackExpired,
    CallbackNotFound,
    CallbackTokenInvalid,
    DatabaseUnavailable,
    ValidationError,
)
from awa.model import hash_callback_token
from awa.signing import SIGNATURE_HEADER, SIGNATURE_TOLERANCE, Secret
from awa.web.asgi import Receive, Scope, Send, lifespan, to_json

__all__ = ["DEFAULT_MAX_BODY", "CallbackIngress", "callback_app"]

log = logging.getLogger("awa.ingress")

#: Default request body limit: 1 MiB.
DEFAULT_MAX_BODY: Final = 1024 * 1024

# Compared against on an unknown id, so that path does the same hashing and constant-time
# comparison as a wrong token's (the store stops at the missing row).
_DECOY_HASH: Final = hash_callback_token("awa-ingress-decoy")
# The one answer for "no such callback" and "not its token" (see the module docstring).
_NOT_FOUND: Final = ("not_found", "no callback with this id and token")

_PATH = re.compile(r"^/?([0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12})/?$")
_FIELDS: Final = {
    "complete": {"action", "payload"},
    "fail": {"action", "payload", "error"},
    "retry": {"action", "payload", "error", "delay"},
    "heartbeat": {"action", "extend_by"},
}


class _Refused(Exception):
    """An answer other than 200; raised inside the handler, turned into a response."""

    def __init__(
        self, status: int, code: str, message: str, headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.headers = list(headers)
        super().__init__(message)


class CallbackIngress:
    """The ASGI callable (build it with ``callback_app``)."""

    def __init__(
        self,
        callbacks: Callbacks,
        *,
        secret: Secret | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        signature_tolerance: float = SIGNATURE_TOLERANCE,
    ) -> None:
        if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
            raise ValidationError("max_body", max_body, "expected a positive number of bytes")
        self.callbacks = callbacks
        self.secret = secret
        self.max_body = max_body
        self.signature_tolerance = signature_tolerance

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            status, body = await self._handle(scope, receive)
            await _respond(send, status, body)
        except _Refused as refused:
            body = {"error": refused.code, "message": refused.message}
            await _respond(send, refused.status, body, refused.headers)

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, dict[str, Any]]:
        if scope["method"] != "POST":
            raise _Refused(405, "method_not_allowed", "use POST", [(b"allow", b"POST")])
        match = _PATH.match(_route_path(scope))
        if match is None:
            raise _Refused(404, "not_found", "POST /<callback id>")
        callback_id = match[1].lower()
        headers = _headers(scope)
        raw = await self._read_body(headers, receive)
        signature = headers.get(SIGNATURE_HEADER.lower())
        if self.secret is not None and not verify_callback_signature(
            self.secret,
            callback_id,
            raw,
            signature,
            self.callbacks.clock.now().timestamp(),
            self.signature_tolerance,
        ):
            raise _Refused(401, "invalid_signature", _signature_problem(signature))
        token = _bearer(headers.get("authorization"))
        request = _parse(raw)
        return await self._resolve(callback_id, token, request)

    async def _read_body(self, headers: dict[str, str], receive: Receive) -> bytes:
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise _Refused(413, "too_large", f"body larger than {self.max_body} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Refused(400, "disconnected", "client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _Refused(413, "too_large", f"body larger than {self.max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _resolve(
        self, callback_id: str, token: str, request: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        action = request["action"]
        try:
            if action == "complete":
                result = await self.callbacks.complete(callback_id, token, request.get("payload"))
            elif action == "fail":
                result = await self.callbacks.fail(
                    callback_id,
                    token,
                    request.get("error") or "failed by callback",
                    request.get("payload"),
                )
            elif action == "retry":
                result = await self.callbacks.retry(
                    callback_id,
                    token,
                    delay=request.get("delay"),
                    error=request.get("error") or "retry requested by callback",
                    payload=request.get("payload"),
                )
            else:
                timeout_at = await self.callbacks.heartbeat(
                    callback_id, token, request["extend_by"]
                )
                log.info("callback %s extended to %s", callback_id, timeout_at.isoformat())
                body = {"callback_id": callback_id, "state": "pending"}
                return 200, {**body, "timeout_at": timeout_at.isoformat()}
        except (CallbackNotFound, CallbackTokenInvalid) as exc:
            # One answer for both, and the same work on both paths: the store compares the
            # token only when the row exists, so an unknown id compares against a decoy.
            if isinstance(exc, CallbackNotFound):
                hmac.compare_digest(hash_callback_token(token), _DECOY_HASH)
                why = "unknown id"
            else:
                why = "wrong token"
            log.warning("callback %s refused: %s", callback_id, why)  # operators may know
            raise _Refused(404, *_NOT_FOUND) from None
        except CallbackAlreadyResolved as exc:
            raise _Refused(409, "already_resolved", f"already {exc.state}") from None
        except CallbackExpired as exc:
            raise _Refused(410, "expired", exc.reason) from None
        except ValidationError as exc:
            raise _Refused(400, "invalid", f"{exc.field}: {exc.reason}") from None
        except DatabaseUnavailable:
            log.warning("callback %s: database unavailable", callback_id)
            raise _Refused(503, "unavailable", "try again later") from None
        log.info("callback %s resolved: %s", callback_id, result.state)
        return 200, {"callback_id": callback_id, "state": result.state}


def callback_app(
    callbacks: Callbacks,
    *,
    secret: Secret | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    signature_tolerance: float = SIGNATURE_TOLERANCE,
) -> CallbackIngress:
    """The ingress for ``callbacks`` (``Callbacks(client)``). With ``secret`` (one, or
    several during a rotation) every request must carry a valid ``Awa-Signature``."""
    return CallbackIngress(
        callbacks, secret=secret, max_body=max_body, signature_tolerance=signature_tolerance
    )


# ----------------------------------------------------------------------------- helpers


def _route_path(scope: Scope) -> str:
    """The path below the mount point (servers differ on whether ``path`` includes
    ``root_path``; Starlette's ``Mount`` keeps it, uvicorn's ``--root-path`` adds it)."""
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    if root and path.startswith(root):
        return path[len(root) :]
    return path


def _headers(scope: Scope) -> dict[str, str]:
    return {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope.get("headers", [])
    }


def _signature_problem(header: str | None) -> str:
    """Why a signature was refused, as far as the header's shape tells: a caller still
    sending body-only ``v1`` signatures is told what changed."""
    entries = {part.strip().partition("=")[0] for part in (header or "").split(",")}
    if "v1" in entries and "v2" not in entries:
        return (
            f"{SIGNATURE_HEADER} must sign the callback id: "
            'v2=HMAC-SHA256 of "<t>.<callback id>." + body (v1 is not accepted here)'
        )
    return f"missing or invalid {SIGNATURE_HEADER}"


def _bearer(value: str | None) -> str:
    scheme, _, token = (value or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _Refused(
            401,
            "unauthorized",
            "send the callback's token as 'Authorization: Bearer <token>'",
            [(b"www-authenticate", b'Bearer realm="awa-callbacks"')],
        )
    return token


def _number(request: dict[str, Any], name: str, *, positive: bool) -> None:
    value = request.get(name)
    if value is None:
        return
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    try:
        ok = ok and math.isfinite(value)
    except OverflowError:  # an integer beyond float range: no sane number of seconds
        ok = False
    if not ok or value < 0 or (positive and value == 0):
        raise _Refused(400, "invalid", f"{name} must be a number of seconds")


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        request = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _Refused(400, "malformed_json", "body is not valid JSON") from None
    if not isinstance(request, dict):
        raise _Refused(400, "invalid", "body must be a JSON object")
    action = request.get("action")
    if action not in ACTIONS:
        raise _Refused(400, "invalid", f"action must be one of {', '.join(ACTIONS)}")
    unknown = set(request) - _FIELDS[action]
    if unknown:
        raise _Refused(400, "invalid", f"unexpected fields for {action}: {sorted(unknown)}")
    if "error" in request and not isinstance(request["error"], str):
        raise _Refused(400, "invalid", "error must be a string")
    _number(request, "delay", positive=False)
    _number(request, "extend_by", positive=True)
    if action == "heartbeat" and request.get("extend_by") is None:  # absent or null
        raise _Refused(400, "invalid", "heartbeat needs extend_by (seconds)")
    return request


async def _respond(
    send: Send, status: int, data: dict[str, Any], headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    body = to_json(data)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
