"""A fault-injecting TCP proxy between the code under test and the real PostgreSQL.

Why: the failures that hurt a job runtime in production are network ones (a partition both
peers think is fine, a backend gone behind a client that is never told, an RST, latency), and
killing processes or ``pg_terminate_backend`` cannot produce them: PostgreSQL then says goodbye
politely. A proxy owning both sockets can, per connection, while PostgreSQL stays real. It
forwards bytes and mocks nothing; the fault methods of ``FaultProxy`` say what each peer sees.

Loopback TCP or Unix-socket upstreams only (test equipment, not a relay). The first packets
are parsed once, to tell connections apart: StartupMessage (``user``, ``database``,
``application_name``), BackendKeyData (``backend_pid``), CancelRequest (``cancel_request``;
asyncpg opens one per timed-out query, and it is proxied like any other connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from collections.abc import Callable
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

__all__ = ["FaultProxy", "ProxiedConnection"]

State = Literal["forwarding", "blackholed", "severed", "reset", "closed"]
_FLOWING = ("forwarding", "blackholed")  # both sockets open, bytes (eventually) delivered
_LIVE = (*_FLOWING, "severed")  # the client socket is still open
_CHUNK = 65536
_QUEUED_CHUNKS = 16  # per direction; beyond this the reader stops and TCP pushes back
_SSL_REQUEST, _GSSENC_REQUEST, _CANCEL_REQUEST = 80877103, 80877104, 80877102
_MAX_STARTUP = 10000  # PostgreSQL's own limit on a startup packet
_MAX_GREETING = 1 << 16  # stop looking for BackendKeyData past this many buffered bytes
_Chunk = tuple[float, bytes]  # (read at, data); b"" is the end of the stream
_Queue = asyncio.Queue[_Chunk]
_Upstream = tuple[str, int]  # a loopback host, or a Unix socket's directory or path; a port


def _parse_upstream(url: str) -> _Upstream:
    """Host and port as asyncpg reads them (netloc first, then ``?host=`` / ``?port=``);
    ValueError unless loopback or a Unix socket."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    hostspec = parts.netloc.rpartition("@")[2]
    if "," in hostspec or "," in query.get("host", ""):
        raise ValueError(f"FaultProxy takes a single upstream host: {url!r}")
    if hostspec.startswith("["):
        host, _, port = hostspec[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = hostspec.partition(":")
    host = unquote(host) or query.get("host", "")
    if not (host.startswith(("/", "127.")) or host in ("localhost", "::1")):
        raise ValueError(f"FaultProxy only forwards to loopback or Unix sockets: {url!r}")
    return host, int(port or query.get("port") or 5432)


async def _open(upstream: _Upstream) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = upstream
    if not host.startswith("/"):
        return await asyncio.open_connection(host, port)
    path = host if ".s.PGSQL." in host else os.path.join(host, f".s.PGSQL.{port}")
    return await asyncio.open_unix_connection(path)


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
    ``state`` records the last fault (ending while forwarding or blackholed makes it
    ``"closed"``; ``"severed"`` and ``"reset"`` stay). ``bytes_up``/``bytes_down`` count bytes
    delivered to PostgreSQL / to the client; ``latency`` is the current delay."""

    def __init__(self, conn_id: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.id = conn_id
        peer = writer.get_extra_info("peername")
        self.client_port: int = int(peer[1]) if peer else 0
        self.backend_pid: int | None = None
        self.startup: dict[str, str] = {}  # the StartupMessage's parameters, all of them
        self.user: str | None = None
        self.database: str | None = None
        self.application_name: str | None = None
        self.cancel_request = False
        self.state: str = "forwarding"  # a State; typed str so tests can assert transitions
        self.latency = 0.0
        self.bytes_up = 0
        self.bytes_down = 0
        self._client = (reader, writer)
        self._upstream_reader: asyncio.StreamReader | None = None
        self._upstream_writer: asyncio.StreamWriter | None = None
        self._changed = asyncio.Event()
        self._client_buf: bytearray | None = bytearray()  # None once startup is parsed
        self._server_buf: bytearray | None = None  # set while the greeting is parsed
        self._awaiting_answer = False  # SSLRequest / GSSENCRequest sent, one byte due

    def __repr__(self) -> str:
        facts = f"{self.state} port={self.client_port} pid={self.backend_pid}"
        return f"<ProxiedConnection #{self.id} {facts} app={self.application_name!r}>"

    def _set(self, state: State | None = None, latency: float | None = None) -> None:
        """Change state and/or latency, and wake every waiting delivery to look again."""
        self.state = state or self.state
        self.latency = self.latency if latency is None else latency
        self._changed.set()
        self._changed = asyncio.Event()  # one-shot broadcast: set, then replaced

    async def _run(self, upstream: _Upstream) -> None:
        """Own both sockets for life: connect upstream once not blackholed, then per direction
        a reader timestamping chunks and a deliverer (two tasks, so latency is pipelined)."""
        try:
            while self.state == "blackholed":
                await self._changed.wait()
            if self.state == "forwarding":
                try:
                    opened = await _open(upstream)
                except OSError:
                    return  # as if PostgreSQL refused: the client sees its socket close
                if self.state in _FLOWING:
                    self._upstream_reader, self._upstream_writer = opened
                else:  # severed or reset while connecting
                    _abort(opened[1])
            async with asyncio.TaskGroup() as tasks:
                for up, source in ((True, self._client[0]), (False, self._upstream_reader)):
                    if source is not None:  # no upstream: severed before it was opened
                        queue: _Queue = asyncio.Queue(_QUEUED_CHUNKS)
                        tasks.create_task(self._read(source, queue, up=up))
                        tasks.create_task(self._deliver(queue, up=up))
        finally:
            self._close()

    def _close(self) -> None:
        if self.state in _FLOWING:
            self.state = "closed"
        _abort(self._client[1])
        _abort(self._upstream_writer)

    async def _read(self, source: asyncio.StreamReader, queue: _Queue, *, up: bool) -> None:
        loop = asyncio.get_running_loop()
        data = b"-"
        while data:
            try:
                data = await source.read(_CHUNK)
            except OSError:
                data = b""
            if data:
                (self._sniff_client if up else self._sniff_server)(data)
            await queue.put((loop.time(), data))

    async def _deliver(self, queue: _Queue, *, up: bool) -> None:
        broken = False
        while True:
            read_at, data = await queue.get()
            deliverable = await self._wait_deliverable(read_at)
            target = self._upstream_writer if up else self._client[1]
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
                broken = True  # the other direction will see that peer's end
                continue
            if up:
                self.bytes_up += len(data)
            else:
                self.bytes_down += len(data)

    async def _wait_deliverable(self, read_at: float) -> bool:
        """Wait while blackholed and until the latency is due: True to deliver, False to drop
        (severed or reset)."""
        loop = asyncio.get_running_loop()
        while self.state in _FLOWING:
            due = read_at + self.latency - loop.time() if self.state == "forwarding" else None
            if due is not None and due <= 0:
                return True
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(due):
                    await changed.wait()
        return False

    def _sniff_client(self, data: bytes) -> None:
        """Untyped startup packets: SSLRequest / GSSENCRequest (then the server's one-byte
        answer decides), CancelRequest, or the StartupMessage's key/value pairs."""
        buf = self._client_buf
        if buf is None:
            return
        buf += data
        if len(buf) < 8:
            return
        length, code = struct.unpack_from("!ii", buf)
        if 8 <= length <= _MAX_STARTUP and len(buf) < length:
            return  # wait for the rest
        if code in (_SSL_REQUEST, _GSSENC_REQUEST) and length == 8:
            self._awaiting_answer = True
            del buf[:8]
            return
        if code == _CANCEL_REQUEST:
            self.cancel_request = True
        elif code >> 16 == 3 and length <= _MAX_STARTUP:  # protocol 3.x StartupMessage
            fields = bytes(buf[8:length]).split(b"\0")
            for key, value in zip(fields[0::2], fields[1::2], strict=False):
                if not key:
                    break
                self.startup[key.decode(errors="replace")] = value.decode(errors="replace")
            self.user = self.startup.get("user")
            self.database = self.startup.get("database", self.user)
            self.application_name = self.startup.get("application_name")
            self._server_buf = bytearray()
        self._client_buf = None  # anything else (direct TLS, garbage): stop looking

    def _sniff_server(self, data: bytes) -> None:
        """The answer to an SSLRequest ('N': the stream stays plain), then the greeting's
        typed messages up to BackendKeyData ('K', the pid) or ReadyForQuery / Error."""
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
            if len(buf) < 1 + length and length >= 4 and len(buf) <= _MAX_GREETING:
                return  # wait for the rest
            if kind == "K" and length >= 8:
                self.backend_pid = struct.unpack_from("!i", buf, 5)[0]
            if kind in "KZE" or length < 4 or len(buf) < 1 + length:
                break
            del buf[: 1 + length]
        self._server_buf = None


Match = Callable[[ProxiedConnection], bool] | None


class FaultProxy(contextlib.AbstractAsyncContextManager["FaultProxy", None]):
    """Listens on 127.0.0.1:<free port>, forwards to one upstream PostgreSQL, injects faults.
    Connection tasks belong to one task group in a supervisor task that only ``close()``
    cancels: nothing outlives the proxy, and a bug in a connection task is raised, not lost."""

    def __init__(self, upstream: _Upstream) -> None:
        self._upstream = upstream
        self._all: list[ProxiedConnection] = []
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
        try:
            await ready
            proxy._server = await asyncio.start_server(proxy._accept, "127.0.0.1", 0)
        except BaseException:
            await proxy.close()
            raise
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
        query = parse_qsl(parts.query, keep_blank_values=True)
        kept = urlencode([(k, v) for k, v in query if k not in ("host", "port", "hostaddr")])
        return parts._replace(netloc=f"{userinfo}{at}127.0.0.1:{self.port}", query=kept).geturl()

    @property
    def connections(self) -> list[ProxiedConnection]:
        """Live connections in accept order (a severed one is live: its client socket is)."""
        return [conn for conn in self._all if conn.state in _LIVE]

    def _matching(self, match: Match) -> list[ProxiedConnection]:
        return [conn for conn in self.connections if match is None or match(conn)]

    def blackhole(self, match: Match = None) -> None:
        """Deliver nothing either way, close no socket. ``match=None`` also holds every
        connection accepted later (connects hang until the client's timeout). Bytes are held,
        not dropped, so ``resume`` acts as a healed network does: TCP retransmits, and a
        half-dropped wire message would corrupt the stream, which no partition does."""
        self._blackhole_new = self._blackhole_new or match is None
        for conn in self._matching(match):
            if conn.state == "forwarding":
                conn._set("blackholed")

    def sever_server_side(self, match: Match = None) -> None:
        """Close the upstream socket: PostgreSQL reads EOF and ends the session, releasing
        its locks, when it next reads (at once if idle, in a transaction or not; after the
        query if one runs). The client is never told: its socket stays open, its bytes are
        swallowed, nothing comes back."""
        for conn in self._matching(match):
            if conn.state in _FLOWING:
                conn._set("severed")
                _abort(conn._upstream_writer)

    def reset(self, match: Match = None) -> None:
        """Abort both sockets, the client's with ``SO_LINGER`` 0: it gets an RST."""
        for conn in self._matching(match):  # all live
            conn._set("reset")
            _abort(conn._client[1], rst=True)
            _abort(conn._upstream_writer, rst=True)

    def delay(self, seconds: float, match: Match = None) -> None:
        """Deliver each chunk, both ways, ``seconds`` after it was read, pipelined (latency,
        not a bandwidth cap); replaces an earlier delay. ``match=None`` also applies to
        connections accepted later."""
        if seconds < 0:
            raise ValueError(f"delay must be >= 0, not {seconds}")
        if match is None:
            self._latency_new = seconds
        for conn in self._matching(match):
            conn._set(latency=seconds)

    def resume(self, match: Match = None) -> None:
        """Undo blackhole and delay (held bytes are then delivered, as after a healed
        partition); severed and reset connections stay dead. ``match=None`` also lets new
        connections forward normally again."""
        if match is None:
            self._blackhole_new, self._latency_new = False, 0.0
        for conn in self._matching(match):
            conn._set("forwarding" if conn.state == "blackholed" else None, latency=0.0)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Synchronous: a coroutine here would become a task owned by the server instead."""
        conn = ProxiedConnection(len(self._all) + 1, reader, writer)
        conn.latency = self._latency_new
        if self._blackhole_new:
            conn.state = "blackholed"
        if self._closed or self._group is None:
            _abort(writer)
            return
        try:
            self._group.create_task(conn._run(self._upstream), name=f"fault-proxy-{conn.id}")
        except RuntimeError:  # the group is shutting down after a failed task: refuse
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
        assert self._supervisor is not None
        self._supervisor.cancel()
        try:
            await self._supervisor
        except asyncio.CancelledError:
            if (current := asyncio.current_task()) and current.cancelling():
                raise  # close() itself was cancelled meanwhile
        finally:
            for conn in self._all:  # also any whose task was cancelled before it first ran
                conn._close()
            if self._server is not None:
                await self._server.wait_closed()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
