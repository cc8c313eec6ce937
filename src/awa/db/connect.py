"""Opening connections and pools with awa's codecs, and turning driver failures into typed
awa errors (``ConfigError`` for a malformed URL, ``DatabaseUnavailable`` for an unreachable
or vanished server)."""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg

from awa.errors import ConfigError, DatabaseUnavailable

__all__ = [
    "CONNECT_ERRORS",
    "Connection",
    "Pool",
    "RawJson",
    "check_database_url",
    "connect",
    "create_pool",
    "translate_errors",
]

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


def _decode_jsonb(data: bytes) -> Any:
    return json.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec("json", encoder=_encode_json, decoder=json.loads, schema="pg_catalog")


def check_database_url(url: str | None) -> str:
    """Validate a PostgreSQL URL's shape; raise ``ConfigError`` naming what is wrong."""
    if url is None or not str(url).strip():
        raise ConfigError(
            "database_url is empty: set AWA_DATABASE_URL or pass --database-url "
            "(the CLI starts an embedded PostgreSQL when neither is given)"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
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


async def connect(url: str, *, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> asyncpg.Connection:
    """One connection with awa's codecs (used for leadership, LISTEN and migrations)."""
    check_database_url(url)

    async def make() -> asyncpg.Connection:
        conn = await asyncpg.connect(url, timeout=timeout, server_settings=_server_settings())
        await _init_connection(conn)
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
    return {"application_name": os.environ.get("AWA_APPLICATION_NAME", "awa")}
