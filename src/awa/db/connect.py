"""Opening connections and pools with awa's codecs, and turning driver failures into typed
awa errors (``ConfigError`` for a malformed URL, ``DatabaseUnavailable`` for an unreachable
or vanished server)."""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg

from awa.db.queries import paired_queries
from awa.errors import ConfigError, DatabaseUnavailable
from awa.model import UndecodableJson

__all__ = [
    "CONNECT_ERRORS",
    "Connection",
    "Pool",
    "RawJson",
    "check_database_url",
    "connect",
    "create_pool",
    "decode_json",
    "translate_errors",
]

_QUERIES = paired_queries("connect")

Connection = asyncpg.Connection
Pool = asyncpg.Pool

DEFAULT_CONNECT_TIMEOUT = 10.0

#: Exceptions that mean "the server is not there (any more)", as opposed to a SQL error.
CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    socket.gaierror,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.InterfaceError,
    # A pooled connection whose backend was terminated, reused after the server's goodbye
    # arrived but before the disconnect was noticed (asyncpg issue 1069): a disconnect.
    asyncpg.exceptions.InternalClientError,
    TimeoutError,
)


class RawJson(str):
    """JSON text that is already serialised (and validated); the codec passes it through."""

    __slots__ = ()


def _encode_json(value: Any) -> str:
    if isinstance(value, RawJson):
        return str.__str__(value)
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _encode_jsonb(value: Any) -> bytes:
    # jsonb's binary wire format is a version byte (1) followed by the JSON text; binary
    # lets the same codec serve COPY, which only speaks binary.
    return b"\x01" + _encode_json(value).encode()


def _int_or_decimal(digits: str) -> int | Decimal:
    # int() refuses more than sys.get_int_max_str_digits() digits (4300 by default) because
    # the conversion is quadratic; Decimal keeps the exact value in linear time and prints.
    try:
        return int(digits)
    except ValueError:
        return Decimal(digits)


_DECODER = json.JSONDecoder()
# The C scanner behind json.loads, called directly: no whitespace skipping, no slicing.
_scan_once: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]
_LONG_INT_DECODER = json.JSONDecoder(parse_int=_int_or_decimal)


def decode_json(text: str, start: int = 0) -> Any:
    """The JSON value in ``text[start:]``; never raises for a value PostgreSQL stored.

    Integers beyond Python's int-string limit become exact ``decimal.Decimal`` values;
    what Python cannot decode at all becomes an ``UndecodableJson`` marker.
    """
    try:
        value, end = _scan_once(text, start)
    except RecursionError:
        return _too_deep(text, start)
    except (StopIteration, ValueError):
        return _decode_slowly(text, start)
    if end != len(text):  # trailing whitespace (json text) or something invalid
        return _decode_slowly(text, start)
    return value


def _too_deep(text: str, start: int) -> UndecodableJson:
    return UndecodableJson("nested deeper than Python's recursion limit", len(text) - start)


def _decode_slowly(text: str, start: int) -> Any:
    body = text[start:] if start else text
    try:
        return _DECODER.decode(body)
    except RecursionError:
        return _too_deep(text, start)
    except json.JSONDecodeError as exc:
        return UndecodableJson(f"not valid JSON ({exc})", len(body))
    except ValueError:
        pass  # an integer with more digits than int() accepts
    try:
        return _LONG_INT_DECODER.decode(body)
    except RecursionError:
        return _too_deep(text, start)
    except ValueError as exc:
        return UndecodableJson(f"cannot be decoded ({exc})", len(body))


def _decode_jsonb(data: bytes) -> Any:
    # jsonb's binary wire format: a version byte (1), then the JSON text.
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        return UndecodableJson(f"not valid UTF-8 ({exc.reason} at byte {exc.start})", len(data) - 1)
    return decode_json(text, 1)


#: Dead-peer detection on both ends of every connection (ADR 014). TCP keepalive probes
#: after 5 s idle, every 2 s, 3 misses; unacknowledged data gives up after 10 s. The server
#: side is set per session so PostgreSQL drops a vanished client's session (and its
#: advisory locks) within seconds instead of the kernel's two hours.
KEEPALIVE_IDLE = 5
KEEPALIVE_INTERVAL = 2
KEEPALIVE_COUNT = 3
USER_TIMEOUT_MS = 10_000


def harden_socket(conn: asyncpg.Connection) -> None:
    """Client-side TCP keepalive and ``TCP_USER_TIMEOUT`` where the platform has them (a
    Unix-socket connection has nothing to detect)."""
    transport = getattr(conn, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    options = [
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPIDLE", None), KEEPALIVE_IDLE),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPINTVL", None), KEEPALIVE_INTERVAL),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPCNT", None), KEEPALIVE_COUNT),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_USER_TIMEOUT", None), USER_TIMEOUT_MS),
    ]
    for level, option, value in options:
        if option is None:
            continue
        try:
            sock.setsockopt(level, option, value)
        except OSError:  # not supported on this platform or socket: keep the default
            continue


async def _init_connection(conn: asyncpg.Connection) -> None:
    harden_socket(conn)
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "json", encoder=_encode_json, decoder=decode_json, schema="pg_catalog"
    )


def check_database_url(url: str | None) -> str:
    """Validate a PostgreSQL URL's shape; raise ``ConfigError`` naming what is wrong."""
    if url is None or not str(url).strip():
        raise ConfigError(
            "database_url is empty: set AWA_DATABASE_URL or pass --database-url "
            "(the CLI starts an embedded PostgreSQL when neither is given)"
        )
    try:
        parts = urlsplit(url)
        # libpq and asyncpg accept a failover list "host1:port1,host2:port2"; urlsplit reads
        # it as one host, so each entry's port is checked on its own.
        for host in parts.netloc.rpartition("@")[2].split(","):
            urlsplit(f"//{host}").port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise ConfigError(f"database_url={_redact(url)!r} is malformed: {exc}") from None
    if parts.scheme not in ("postgres", "postgresql"):
        raise ConfigError(
            f"database_url={_redact(url)!r} is malformed: scheme must be postgresql:// or "
            "postgres://, "
            f"got {parts.scheme or 'none'!r}"
        )
    return url


T = TypeVar("T")


async def translate_errors(url: str, make: Callable[[], Awaitable[T]]) -> T:
    """Run ``make`` and turn connection-level failures into ``DatabaseUnavailable``."""
    try:
        return await make()
    except CONNECT_ERRORS as exc:
        safe = _redact(url)
        raise DatabaseUnavailable(f"cannot reach PostgreSQL at {safe}: {exc}") from exc
    except asyncpg.exceptions.InvalidAuthorizationSpecificationError as exc:
        raise ConfigError(f"PostgreSQL at {_redact(url)} refused the login: {exc}") from exc
    except asyncpg.exceptions.InvalidCatalogNameError as exc:
        raise ConfigError(f"database in {_redact(url)} does not exist: {exc}") from exc


_USERINFO_PASSWORD = re.compile(r"(//[^/@:?#]*:)[^@/?#]*@")
_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=)[^&#]*")


def _redact(url: str) -> str:
    """The URL without its password (in the userinfo or a ``password=`` parameter), so
    errors and logs never carry secrets; textual, so it works on malformed URLs too."""
    return _QUERY_PASSWORD.sub(r"\1***", _USERINFO_PASSWORD.sub(r"\1***@", str(url)))


async def connect(
    url: str, *, timeout: float = DEFAULT_CONNECT_TIMEOUT, idle_limit: float | None = None
) -> asyncpg.Connection:
    """One connection with awa's codecs (used for leadership, presence, LISTEN and
    migrations).

    ``idle_limit`` (seconds) is for long-held connections whose owner promises to use them
    more often than that (an active check): the server ends the session once it sits idle
    longer, so a client that vanished without a word (host crash, a partition, a NAT that
    answers keepalives) loses its session locks within that bound (PostgreSQL 14+)."""
    check_database_url(url)

    async def make() -> asyncpg.Connection:
        conn = await asyncpg.connect(url, timeout=timeout, server_settings=_server_settings())
        try:
            await _init_connection(conn)
            if idle_limit is not None and conn.get_server_version().major >= 14:
                millis = f"{max(1, int(idle_limit * 1000))}ms"
                await conn.execute(_QUERIES["session_idle_limit"].sql, millis)
        except BaseException:
            conn.terminate()
            raise
        return conn

    return await translate_errors(url, make)


async def create_pool(
    url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = DEFAULT_CONNECT_TIMEOUT
) -> asyncpg.Pool:
    """A pool whose connections all carry awa's codecs."""
    check_database_url(url)

    async def make() -> asyncpg.Pool:
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            init=_init_connection,
            reset=_reset_if_dirty,
            server_settings=_server_settings(),
        )
        assert pool is not None
        return pool

    return await translate_errors(url, make)


async def _reset_if_dirty(conn: asyncpg.Connection) -> None:
    """Pool release hook. asyncpg's default runs a reset statement (unlock advisory locks,
    UNLISTEN, RESET ALL) on every release: one extra transaction per pooled query, which
    doubled an idle runtime's load on PostgreSQL. awa's pooled connections never take
    session locks, LISTEN or SET (those live on dedicated connections), so a full reset is
    only needed when a connection comes back inside a transaction (a cancelled query)."""
    if conn.is_in_transaction():
        await conn.reset()


def _server_settings() -> dict[str, str]:
    return {
        "application_name": os.environ.get("AWA_APPLICATION_NAME", "awa"),
        "tcp_keepalives_idle": str(KEEPALIVE_IDLE),
        "tcp_keepalives_interval": str(KEEPALIVE_INTERVAL),
        "tcp_keepalives_count": str(KEEPALIVE_COUNT),
        "tcp_user_timeout": str(USER_TIMEOUT_MS),
    }
