"""Serve an ASGI app with uvicorn inside the caller's task group (structured: cancelling
the group stops the server)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import anyio
import uvicorn
from anyio.abc import TaskStatus

from awa.errors import ConfigError
from awa.web.asgi import ASGIApp

__all__ = ["serve"]


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the host process (the runtime's
    CLI already turns SIGINT/SIGTERM into a graceful shutdown)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here rather than by uvicorn: uvicorn logs a bind
    failure and calls ``sys.exit``, which leaves the caller neither the reason nor the
    address (and its log line on top of the caller's error)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except (OSError, OverflowError, ValueError) as exc:
        sock.close()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot serve on {host}:{port}: {reason}") from exc
    sock.set_inheritable(True)
    return sock


async def serve(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run until cancelled; reports the bound port through ``task_status`` (``port=0``
    picks a free one). An address that cannot be bound (a port in use, an unknown host)
    is a ``ConfigError`` naming it."""
    sock = _bind(host, port)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    server = _EmbeddedServer(config)
    stopped = anyio.Event()

    async def run() -> None:
        # Shielded: the server stops by ``should_exit`` (closing its sockets and
        # connections cleanly), not by a cancellation landing in the middle of it.
        with anyio.CancelScope(shield=True):
            try:
                await server.serve(sockets=[sock])
            except SystemExit:  # uvicorn exits the process when startup (lifespan) fails
                pass
            finally:
                stopped.set()
                sock.close()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        while not server.started:
            if stopped.is_set():
                raise ConfigError(f"cannot serve on {host}:{port}: the application did not start")
            await anyio.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()[1]
        task_status.started(int(bound))
        try:
            await anyio.sleep_forever()
        finally:
            server.should_exit = True
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(5):
                    await stopped.wait()
                server.force_exit = True
                await stopped.wait()
