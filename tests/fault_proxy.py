"""A fault-injecting TCP proxy between the code under test and the real PostgreSQL.

Why: the failures that hurt a job runtime in production are network ones. A partition leaves
both peers believing the connection is alive (half-open); a backend dies behind a client that
is never told; a middlebox sends RST; latency grows. Killing processes or calling
``pg_terminate_backend`` cannot produce those, because PostgreSQL then says goodbye politely. A
proxy that owns both sockets can, per connection and deterministically, while PostgreSQL stays
real: it forwards bytes and mocks nothing.

Model of each fault (what each peer observes):

* ``blackhole``: nothing is delivered either way and no socket is closed. Bytes are held, not
  dropped (kernel buffers, then a bounded queue), so ``resume`` behaves like a healed network:
  TCP would have retransmitted them, and dropping part of a wire message would corrupt the
  stream in a way no real partition does.
* ``sever_server_side``: the upstream socket is closed, so PostgreSQL reads EOF and ends the
  session (releasing its locks) as soon as it next reads from the client, which an idle or
  idle-in-transaction backend does at once. The client is never told: its bytes are read and
  swallowed, nothing is written back, its socket stays open.
* ``reset``: both sockets are aborted, the client's with ``SO_LINGER`` 0, so it gets an RST.
* ``delay``: every chunk is delivered no earlier than ``delay`` seconds after it was read,
  pipelined (latency, not a bandwidth cap).

Only loopback upstreams are accepted (TCP on localhost / 127.0.0.0/8 / ::1, or a Unix socket,
which is what the embedded test server listens on): the proxy is test equipment, not a relay.
The first bytes of each connection are parsed once, cheaply, to learn who it is: the
StartupMessage (``user``, ``database``, ``application_name``) and the server's BackendKeyData
(``backend_pid``). A CancelRequest connection (asyncpg opens one when a query times out) is
marked ``cancel_request``; it is proxied like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

__all__ = ["FaultProxy", "ProxiedConnection"]

State = Literal["forwarding", "blackholed", "severed", "reset", "closed"]

_LIVE: frozenset[str] = frozenset({"forwarding", "blackholed", "severed"})
_CHUNK = 65536
_QUEUED_CHUNKS = 16  # per direction; beyond this the reader stops and TCP pushes back
_SSL_REQUEST, _GSSENC_REQUEST, _CANCEL_REQUEST = 80877103, 80877104, 80877102
_MAX_STARTUP = 10000  # PostgreSQL's own limit on a startup packet
_MAX_SNIFF = 1 << 16  # give up on the server's greeting past this many buffered bytes
_Chunk = tuple[float, bytes]  # (read at, data); b"" is end of stream


@dataclass(frozen=True)
class _Upstream:
    """Where PostgreSQL listens: a Unix socket path, or a loopback TCP host and port."""

    host: str
    port: int

    @property
    def unix_path(self) -> str | None:
        if not self.host.startswith("/"):
            return None
        if ".s.PGSQL." in self.host:
            return self.host
        return os.path.join(self.host, f".s.PGSQL.{self.port}")


def _parse_upstream(url: str) -> _Upstream:
    """Host and port the way asyncpg reads them: the URL's netloc first, then ``?host=`` and
    ``?port=``. Raises ValueError unless the address is loopback or a Unix socket."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    hostspec = parts.netloc.rpartition("@")[2]
    if "," in hostspec or "," in query.get("host", ""):
        raise ValueError(f"FaultProxy takes a single upstream host: {url!r}")
    if hostspec.startswith("["):
        host, _, rest = hostspec[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = hostspec.partition(":")
    host = unquote(host) or query.get("host", "")
    port = port or query.get("port", "") or "5432"
    if not host:
        raise ValueError(f"FaultProxy needs the upstream URL to name its host: {url!r}")
    if not (host.startswith("/") or host == "localhost" or _is_loopback_ip(host)):
        raise ValueError(f"FaultProxy only forwards to loopback or Unix sockets, not {host!r}")
    return _Upstream(host, int(port))


def _is_loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _abort(writer: asyncio.StreamWriter | None, *, rst: bool = False) -> None:
    """Close now, discarding unsent bytes; with ``rst`` a TCP peer gets RST rather than FIN."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    if rst and sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class ProxiedConnection:
    """One client connection through the proxy: who it is, its fault state, its traffic.

    ``state`` records the last fault: a connection that ended while forwarding (or
    blackholed) becomes ``"closed"``; ``"severed"`` and ``"reset"`` stay as they are.
    ``bytes_up``/``bytes_down`` count bytes delivered to PostgreSQL / to the client.
    """

    def __init__(self, conn_id: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.id = conn_id
        peer = writer.get_extra_info("peername")
        self.client_port: int = int(peer[1]) if peer else 0
        self.backend_pid: int | None = None
        self.startup: dict[str, str] = {}
        self.cancel_request = False
        self.state: str = "forwarding"  # a State; typed str so tests can assert transitions
        self.latency = 0.0
        self.bytes_up = 0
        self.bytes_down = 0
        self._client_reader = reader
        self._client_writer = writer
        self._upstream_reader: asyncio.StreamReader | None = None
        self._upstream_writer: asyncio.StreamWriter | None = None
        self._changed = asyncio.Event()
        self._client_buf: bytearray | None = bytearray()  # None once the startup is parsed
        self._server_buf: bytearray | None = None  # set while the server's greeting is parsed
        self._awaiting_answer = False  # SSLRequest / GSSENCRequest sent, one-byte answer due

    @property
    def application_name(self) -> str | None:
        return self.startup.get("application_name")

    @property
    def user(self) -> str | None:
        return self.startup.get("user")

    @property
    def database(self) -> str | None:
        return self.startup.get("database", self.startup.get("user"))

    def __repr__(self) -> str:
        return (
            f"<ProxiedConnection #{self.id} {self.state} port={self.client_port} "
            f"pid={self.backend_pid} app={self.application_name!r}>"
        )

    # ---- faults (called by FaultProxy, synchronously) ----

    def _set(self, state: State) -> None:
        self.state = state
        self._wake()

    def _wake(self) -> None:
        """Tell every waiting delivery to look at the state again (a one-shot broadcast)."""
        self._changed.set()
        self._changed = asyncio.Event()

    def _blackhole(self) -> None:
        if self.state == "forwarding":
            self._set("blackholed")

    def _resume(self) -> None:
        self.latency = 0.0
        if self.state == "blackholed":
            self._set("forwarding")
        else:
            self._wake()

    def _set_latency(self, seconds: float) -> None:
        self.latency = seconds
        self._wake()

    def _sever(self) -> None:
        if self.state in ("forwarding", "blackholed"):
            self._set("severed")
            _abort(self._upstream_writer)

    def _reset(self) -> None:
        if self.state in _LIVE:
            self._set("reset")
            _abort(self._client_writer, rst=True)
            _abort(self._upstream_writer, rst=True)

    # ---- serving ----

    async def _run(self, upstream: _Upstream) -> None:
        """Own both sockets for the connection's whole life; abort whatever is left on exit."""
        try:
            await self._wait_while_blackholed()
            if self.state == "forwarding" and not await self._connect(upstream):
                return
            async with asyncio.TaskGroup() as pipes:
                pipes.create_task(self._pipe(self._client_reader, up=True))
                if self._upstream_reader is not None:
                    pipes.create_task(self._pipe(self._upstream_reader, up=False))
        finally:
            if self.state in ("forwarding", "blackholed"):
                self.state = "closed"
            _abort(self._client_writer)
            _abort(self._upstream_writer)

    async def _connect(self, upstream: _Upstream) -> bool:
        """Open the PostgreSQL side; False (and the connection ends) if PostgreSQL refuses."""
        path = upstream.unix_path
        try:
            if path is not None:
                reader, writer = await asyncio.open_unix_connection(path)
            else:
                reader, writer = await asyncio.open_connection(upstream.host, upstream.port)
        except OSError:
            return False
        if self.state not in ("forwarding", "blackholed"):  # severed or reset meanwhile
            _abort(writer)
            return True
        self._upstream_reader, self._upstream_writer = reader, writer
        return True

    async def _wait_while_blackholed(self) -> None:
        while self.state == "blackholed":
            await self._changed.wait()

    async def _pipe(self, source: asyncio.StreamReader, *, up: bool) -> None:
        """One direction: a reader that timestamps chunks, a writer that delivers them when
        the state and the latency allow. Two tasks, so latency is pipelined."""
        queue: asyncio.Queue[_Chunk] = asyncio.Queue(_QUEUED_CHUNKS)
        async with asyncio.TaskGroup() as halves:
            halves.create_task(self._read(source, queue, up=up))
            halves.create_task(self._deliver(queue, up=up))

    async def _read(
        self, source: asyncio.StreamReader, queue: asyncio.Queue[_Chunk], *, up: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await source.read(_CHUNK)
            except OSError:
                data = b""
            if data and up:
                self._sniff_client(data)
            elif data:
                self._sniff_server(data)
            await queue.put((loop.time(), data))
            if not data:
                return

    async def _deliver(self, queue: asyncio.Queue[_Chunk], *, up: bool) -> None:
        broken = False
        while True:
            read_at, data = await queue.get()
            deliverable = await self._wait_deliverable(read_at)
            target = self._upstream_writer if up else self._client_writer
            if not data:
                if deliverable and target is not None:
                    target.close()  # a clean end: pass the FIN on, after what was queued
                return
            if not deliverable or broken or target is None:
                continue  # severed (or the target died): swallow
            try:
                target.write(data)
                await target.drain()
            except OSError:
                broken = True  # the other pipe will see that peer's end and close the rest
                continue
            if up:
                self.bytes_up += len(data)
            else:
                self.bytes_down += len(data)

    async def _wait_deliverable(self, read_at: float) -> bool:
        """True once the chunk may be delivered; False if it must be dropped (the connection
        was severed, reset or closed). Waits while blackholed and until its latency is due."""
        loop = asyncio.get_running_loop()
        while True:
            if self.state not in ("forwarding", "blackholed"):
                return False
            remaining: float | None = None
            if self.state == "forwarding":
                remaining = read_at + self.latency - loop.time()
                if remaining <= 0:
                    return True
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()

    # ---- wire protocol sniffing (the first packets only) ----

    def _sniff_client(self, data: bytes) -> None:
        """Parse untyped startup packets: SSLRequest / GSSENCRequest (then wait for the
        server's one-byte answer), CancelRequest, or the StartupMessage itself."""
        buf = self._client_buf
        if buf is None:
            return
        buf += data
        while len(buf) >= 8:
            length, code = struct.unpack_from("!ii", buf)
            if not 8 <= length <= _MAX_STARTUP:
                break  # not a plain startup packet (direct TLS, garbage): stop looking
            if len(buf) < length:
                return
            packet, buf[:] = bytes(buf[:length]), buf[length:]
            if code in (_SSL_REQUEST, _GSSENC_REQUEST):
                self._awaiting_answer = True
                return
            if code == _CANCEL_REQUEST:
                self.cancel_request = True
            elif code >> 16 == 3:
                fields = packet[8:].split(b"\0")
                pairs = zip(fields[0::2], fields[1::2], strict=False)
                for key, value in pairs:
                    if not key:
                        break
                    self.startup[key.decode(errors="replace")] = value.decode(errors="replace")
                self._server_buf = bytearray()
            break
        self._client_buf = None

    def _sniff_server(self, data: bytes) -> None:
        """The answer to an SSLRequest ('N' keeps the stream plain), then the greeting's
        typed messages up to BackendKeyData ('K': the backend pid) or ReadyForQuery/Error."""
        if self._awaiting_answer:
            self._awaiting_answer = False
            if data[:1] != b"N":
                self._client_buf = None  # encrypted from here on: nothing more to learn
            data = data[1:]
        buf = self._server_buf
        if buf is None:
            return
        buf += data
        while len(buf) >= 5:
            kind, length = chr(buf[0]), struct.unpack_from("!i", buf, 1)[0]
            if length < 4 or len(buf) > _MAX_SNIFF:
                break
            if len(buf) < 1 + length:
                return
            if kind == "K" and length >= 8:
                self.backend_pid = struct.unpack_from("!i", buf, 5)[0]
                break
            if kind in "ZE":
                break
            del buf[: 1 + length]
        self._server_buf = None


Match = Callable[[ProxiedConnection], bool] | None


class FaultProxy:
    """Listens on 127.0.0.1:<free port> and forwards each connection to one upstream
    PostgreSQL, injecting faults on demand. Every connection task belongs to one task group
    run by a supervisor task that only ``close()`` cancels, so nothing outlives the proxy and
    a bug in a connection task is raised by ``close()`` rather than lost."""

    def __init__(self, upstream: _Upstream) -> None:
        self._upstream = upstream
        self._all: list[ProxiedConnection] = []
        self._next_id = 0
        self._blackhole_new = False
        self._latency_new = 0.0
        self._closed = False
        self._server: asyncio.Server | None = None
        self._group: asyncio.TaskGroup | None = None
        self._supervisor: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, upstream_url: str) -> FaultProxy:
        proxy = cls(_parse_upstream(upstream_url))
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        proxy._supervisor = asyncio.create_task(proxy._supervise(ready), name="fault-proxy")
        await ready
        proxy._server = await asyncio.start_server(proxy._accept, "127.0.0.1", 0)
        return proxy

    async def _supervise(self, ready: asyncio.Future[None]) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            ready.set_result(None)
            await asyncio.Event().wait()  # until close() cancels this task

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, upstream_url: str) -> str:
        """``upstream_url`` with host and port pointing at the proxy; user, password,
        database and the rest of the query kept. It must name this proxy's upstream server
        (any database on it): the proxy has only one place to forward to."""
        if _parse_upstream(upstream_url) != self._upstream:
            raise ValueError(f"{upstream_url!r} is not this proxy's upstream {self._upstream}")
        parts = urlsplit(upstream_url)
        userinfo, at, _ = parts.netloc.rpartition("@")
        query = [
            (key, value)
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
            if key not in ("host", "port", "hostaddr")
        ]
        netloc = f"{userinfo}{at}127.0.0.1:{self.port}"
        return parts._replace(netloc=netloc, query=urlencode(query)).geturl()

    @property
    def connections(self) -> list[ProxiedConnection]:
        """Live connections (a severed one is live: its client socket is open), in accept
        order."""
        return [conn for conn in self._all if conn.state in _LIVE]

    def _matching(self, match: Match) -> list[ProxiedConnection]:
        return [conn for conn in self.connections if match is None or match(conn)]

    def blackhole(self, match: Match = None) -> None:
        """Stop forwarding both ways, sockets kept open. ``match=None`` also holds every
        connection accepted later (connects then hang until the client's timeout)."""
        if match is None:
            self._blackhole_new = True
        for conn in self._matching(match):
            conn._blackhole()

    def sever_server_side(self, match: Match = None) -> None:
        """Close the PostgreSQL side only; the client socket stays open and silent."""
        for conn in self._matching(match):
            conn._sever()

    def reset(self, match: Match = None) -> None:
        """Abort both sides; the client gets RST."""
        for conn in self._matching(match):
            conn._reset()

    def delay(self, seconds: float, match: Match = None) -> None:
        """Deliver every chunk, both directions, ``seconds`` after it was read (replacing any
        earlier delay). ``match=None`` also applies to connections accepted later."""
        if seconds < 0:
            raise ValueError(f"delay must be >= 0, not {seconds}")
        if match is None:
            self._latency_new = seconds
        for conn in self._matching(match):
            conn._set_latency(seconds)

    def resume(self, match: Match = None) -> None:
        """Undo blackhole and delay (held bytes are then delivered, as after a healed
        partition). Severed and reset connections stay dead. ``match=None`` also makes new
        connections forward normally again."""
        if match is None:
            self._blackhole_new = False
            self._latency_new = 0.0
        for conn in self._matching(match):
            conn._resume()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Synchronous on purpose: a coroutine here would become a task owned by the
        server; this way the proxy's task group owns it."""
        self._next_id += 1
        conn = ProxiedConnection(self._next_id, reader, writer)
        conn.latency = self._latency_new
        if self._blackhole_new:
            conn.state = "blackholed"
        if self._closed or self._group is None:
            _abort(writer)
            return
        try:
            self._group.create_task(conn._run(self._upstream), name=f"fault-proxy-{conn.id}")
        except RuntimeError:  # the group is shutting down (close() or a failed task)
            _abort(writer)
            return
        self._all.append(conn)

    async def close(self) -> None:
        """Stop listening and abort every connection. Safe to call twice; raises what a
        connection task failed with, if one did."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        if self._supervisor is not None:
            self._supervisor.cancel()
            try:
                await self._supervisor
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
