"""The few ASGI primitives the operator apps need (responses, JSON encoding)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

__all__ = ["ASGIApp", "Receive", "Scope", "Send", "send_json", "send_text", "to_json"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def to_json(data: Any) -> bytes:
    return json.dumps(data, default=_default, sort_keys=True).encode()


async def send_text(
    send: Send, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8"
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, data: Any) -> None:
    await send_text(send, status, to_json(data), "application/json")


async def lifespan(
    receive: Receive, send: Send, on_shutdown: Callable[[], Awaitable[None]] | None = None
) -> None:
    """Answer the ASGI lifespan protocol (uvicorn sends it). ``on_shutdown`` runs before
    shutdown is reported complete: once it is, the server returns and the event loop
    ends, cancelling whatever cleanup is still running (a pool closing its connections
    ended as a CancelledError traceback on Ctrl-C)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if on_shutdown is not None:
                await on_shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
