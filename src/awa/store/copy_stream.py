"""``Store.jobs.insert_many``'s rows in PostgreSQL's binary COPY format, encoded by hand.

asyncpg's record path (``copy_records_to_table``) looks up a codec per column and calls a
Python codec per jsonb value; for a batch of small jobs that was most of the client's
cost. This module writes the stream directly (about 0.6 µs per row against 3.9 µs), and
encodes the columns a batch's jobs usually share once per distinct combination. The
column order and types must match ``COPY_COLUMNS`` and ``awa.jobs``; a mismatch fails the
COPY loudly (PostgreSQL checks every field's length), and ``tests/client/test_insert.py``
compares rows written this way with rows written by ``insert``.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any, Final

from awa.db.connect import RawJson
from awa.model import InsertParams

__all__ = ["COPY_COLUMNS", "CopyEncoder", "copy_rows"]

#: ``insert_many``'s COPY columns: those that vary per job first, then those a batch's jobs
#: usually share (encoded once per distinct combination, see ``CopyEncoder``).
COPY_COLUMNS = (
    "id",
    "args",
    "run_at",
    "kind",
    "queue",
    "state",
    "priority",
    "original_priority",
    "max_attempts",
    "created_at",
    "timeout_s",
    "tags",
    "metadata",
)

_COPY_HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no extension
_COPY_TRAILER: Final = b"\xff\xff"
#: Rows per CopyData message: small enough that PostgreSQL works on one chunk while the
#: next is encoded, large enough that the per-message cost vanishes (~60 KB of no-op jobs).
_COPY_CHUNK_ROWS: Final = 500
_COPY_CHUNK_BYTES: Final = 256 * 1024
_PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_TEXT_OID: Final = 25
_ROW_HEAD = struct.Struct(">hiqib")  # field count; id (bigint); args' length and jsonb version
_INT8_FIELD = struct.Struct(">iq")
_LENGTH = struct.Struct(">i")
_NULL_FIELD: Final = b"\xff\xff\xff\xff"
#: kind, queue, priority, max_attempts, timeout, tags, metadata JSON: what a job shares with
#: the others of its batch (with whether it is due), read from its ``__dict__`` in one call.
_SharedKey = tuple[str, str, int, int, float | timedelta | None, Sequence[str], str]
_shared_values: Callable[[dict[str, Any]], _SharedKey] = itemgetter(
    "kind", "queue", "priority", "max_attempts", "timeout", "tags", "_metadata_json"
)


async def copy_rows(
    c: Any,
    stream: Callable[[], AsyncIterator[bytes]],
    records: Callable[[], list[tuple[Any, ...]]],
) -> None:
    """COPY rows into ``awa.jobs`` in ``COPY_COLUMNS`` order: the hand-encoded binary
    ``stream()`` when the session speaks UTF-8, else ``records()`` through asyncpg's codecs
    (which encode text in the session's encoding)."""
    if utf8_session(c):
        await c.copy_to_table(
            "jobs", schema_name="awa", columns=COPY_COLUMNS, source=stream(), format="binary"
        )
    else:
        await c.copy_records_to_table(
            "jobs", schema_name="awa", columns=COPY_COLUMNS, records=records()
        )


def utf8_session(c: Any) -> bool:
    """Whether the session's client_encoding is UTF-8 (always so on awa's connections; a
    caller's own connection may have changed it), which the binary COPY stream assumes."""
    encoding = getattr(c.get_settings(), "client_encoding", "UTF8")
    return str(encoding).upper().replace("-", "").replace("_", "") in ("UTF8", "UNICODE")


def _pg_timestamp(value: datetime) -> int:
    """A timestamptz's binary value (microseconds since 2000-01-01 UTC), as asyncpg encodes
    it: naive means local time, the extremes of ``datetime`` mean ±infinity."""
    if value.tzinfo is None:
        if value == datetime.max:
            return 0x7FFFFFFFFFFFFFFF
        if value == datetime.min:
            return -0x8000000000000000
        value = value.astimezone(UTC)
    micros = (value - _PG_EPOCH) // _MICROSECOND
    if micros == 252455615999999999:  # datetime.max in UTC
        return 0x7FFFFFFFFFFFFFFF
    if micros == -63082281600000000:  # datetime.min in UTC
        return -0x8000000000000000
    return micros


def _text_field(value: str) -> bytes:
    data = value.encode()
    return _LENGTH.pack(len(data)) + data


def _jsonb_field(text: str) -> bytes:
    data = text.encode()
    return _LENGTH.pack(len(data) + 1) + b"\x01" + data


def _text_array_field(values: Sequence[str]) -> bytes:
    if not values:  # no dimensions, no null bitmap, element type text
        return struct.pack(">iiii", 12, 0, 0, _TEXT_OID)
    parts = [struct.pack(">iiiii", 1, 0, _TEXT_OID, len(values), 1)]
    parts.extend(_text_field(v) for v in values)
    body = b"".join(parts)
    return _LENGTH.pack(len(body)) + body


class CopyEncoder:
    """Encodes ``insert_many``'s rows (columns as in ``COPY_COLUMNS``) in PostgreSQL's
    binary COPY format directly: asyncpg's record path calls a Python codec per jsonb value
    and looks up a codec per column, several times the cost of this. The columns a batch's
    jobs usually share (kind, queue, state, priorities, max_attempts, created_at, timeout,
    tags, metadata) are encoded once per distinct combination. Also collects what the
    notifications need: the queues with due jobs and the earliest deferred run_at."""

    def __init__(self, at: datetime) -> None:
        self.at = at
        self.woken: set[str] = set()
        self.earliest_deferred: datetime | None = None
        self._at_field = _INT8_FIELD.pack(8, _pg_timestamp(at))
        #: The shared fields by ``_shared_values`` of a job, for due jobs and for later ones.
        self._due: dict[_SharedKey, bytes] = {}
        self._later: dict[_SharedKey, bytes] = {}

    def _shared_fields(self, p: InsertParams, due: bool, key: _SharedKey) -> bytes:
        """Encode (once per batch) the shared fields of ``key``; a due job's queue is one
        to wake, and every due job's queue passes here with its key's first job."""
        timeout = p.timeout_seconds
        encoded = b"".join(
            (
                _text_field(p.kind),
                _text_field(p.queue),
                _text_field("available" if due else "scheduled"),
                struct.pack(">ihihii", 2, p.priority, 2, p.priority, 4, p.max_attempts),
                self._at_field,
                _NULL_FIELD if timeout is None else struct.pack(">id", 8, timeout),
                _text_array_field(p.tags),
                _jsonb_field(p.metadata_json),
            )
        )
        if due:
            self.woken.add(p.queue)
            self._due[key] = encoded
        else:
            self._later[key] = encoded
        return encoded

    def chunks(self, params: Sequence[InsertParams], ids: Sequence[int]) -> Iterator[bytes]:
        """The rows of ``params`` (with ``ids``), without the COPY header or trailer, in
        chunks of at most ``_COPY_CHUNK_ROWS`` rows or about ``_COPY_CHUNK_BYTES``: each
        chunk is one CopyData message, and PostgreSQL refuses a message of 1 GB or more
        (500 jobs of 2 MB args would be one), besides the memory one big join costs.

        Per job this is the COPY encoder's whole Python cost, so the loop reads each job's
        stored values straight from its ``__dict__`` (``InsertParams`` keeps them there,
        subclasses too) and its shared ones in one C call (``_shared_values``)."""
        at = self.at
        at_field = self._at_field
        due_fields = self._due
        later_fields = self._later
        shared_values = _shared_values
        head = _ROW_HEAD.pack
        int8_field = _INT8_FIELD.pack
        out: list[bytes] = []
        append = out.append
        size = 0
        for p, job_id in zip(params, ids, strict=True):
            job = p.__dict__
            key: _SharedKey = shared_values(job)
            if key[5].__class__ is not tuple:  # tags given as a list: hashable, same key
                key = (*key[:5], tuple(key[5]), key[6])
            run_at = job["run_at"]
            if run_at is None:
                run_at_field = at_field
                fields = due_fields.get(key) or self._shared_fields(p, True, key)
            else:
                run_at_field = int8_field(8, _pg_timestamp(run_at))
                if run_at <= at:
                    fields = due_fields.get(key) or self._shared_fields(p, True, key)
                else:
                    fields = later_fields.get(key) or self._shared_fields(p, False, key)
                    if self.earliest_deferred is None or run_at < self.earliest_deferred:
                        self.earliest_deferred = run_at
            args = job["_args_json"].encode()
            append(head(13, 8, job_id, len(args) + 1, 1))
            append(args)
            append(run_at_field)
            append(fields)
            size += len(args) + len(fields)
            if len(out) >= 4 * _COPY_CHUNK_ROWS or size >= _COPY_CHUNK_BYTES:
                yield b"".join(out)
                out.clear()
                size = 0
        if out:
            yield b"".join(out)

    def batch_chunks(
        self, p: InsertParams, args_jsons: Sequence[str], ids: Sequence[int]
    ) -> Iterator[bytes]:
        """The rows of jobs that share every column of ``p`` but their args
        (``insert_batch``), chunked as ``chunks`` does: the shared fields and the run_at
        are encoded once, so a row costs its args alone."""
        key: _SharedKey = _shared_values(p.__dict__)
        key = (*key[:5], tuple(key[5]), key[6])
        run_at = p.run_at
        due = run_at is None or run_at <= self.at
        tail = (
            self._at_field if run_at is None else _INT8_FIELD.pack(8, _pg_timestamp(run_at))
        ) + self._shared_fields(p, due, key)
        if (
            not due
            and run_at is not None
            and (self.earliest_deferred is None or run_at < self.earliest_deferred)
        ):
            self.earliest_deferred = run_at
        head = _ROW_HEAD.pack
        out: list[bytes] = []
        append = out.append
        size = 0
        for args_json, job_id in zip(args_jsons, ids, strict=True):
            args = args_json.encode()
            append(head(13, 8, job_id, len(args) + 1, 1))
            append(args)
            append(tail)
            size += len(args) + len(tail)
            if len(out) >= 3 * _COPY_CHUNK_ROWS or size >= _COPY_CHUNK_BYTES:
                yield b"".join(out)
                out.clear()
                size = 0
        if out:
            yield b"".join(out)

    async def batch_stream(
        self, p: InsertParams, args_jsons: Sequence[str], ids: Sequence[int]
    ) -> AsyncIterator[bytes]:
        """The whole COPY stream of a batch (see ``batch_chunks``)."""
        yield _COPY_HEADER
        for chunk in self.batch_chunks(p, args_jsons, ids):
            yield chunk
        yield _COPY_TRAILER

    def batch_records(
        self, p: InsertParams, args_jsons: Sequence[str], ids: Sequence[int]
    ) -> list[tuple[Any, ...]]:
        """The rows of a batch as tuples, for asyncpg's codecs (a session not in UTF-8)."""
        [shared] = self.records([p], [0])
        return [
            (job_id, RawJson(a), *shared[2:]) for a, job_id in zip(args_jsons, ids, strict=True)
        ]

    def encode_all(self, params: Sequence[InsertParams], ids: Sequence[int]) -> bytes:
        """The whole COPY stream as one bytes object (benchmarks and tests)."""
        return b"".join([_COPY_HEADER, *self.chunks(params, ids), _COPY_TRAILER])

    async def stream(
        self, params: Sequence[InsertParams], ids: Sequence[int]
    ) -> AsyncIterator[bytes]:
        """The whole COPY stream, chunk by chunk (see ``chunks``)."""
        yield _COPY_HEADER
        for chunk in self.chunks(params, ids):
            yield chunk
        yield _COPY_TRAILER

    def records(self, params: Sequence[InsertParams], ids: Sequence[int]) -> list[tuple[Any, ...]]:
        """The same rows as tuples, for asyncpg's codecs (a session not in UTF-8)."""
        at = self.at
        records = []
        for p, job_id in zip(params, ids, strict=True):
            run_at = p.run_at or at
            due = run_at <= at
            if due:
                self.woken.add(p.queue)
            elif self.earliest_deferred is None or run_at < self.earliest_deferred:
                self.earliest_deferred = run_at
            records.append(
                (
                    job_id,
                    RawJson(p.args_json),
                    run_at,
                    p.kind,
                    p.queue,
                    "available" if due else "scheduled",
                    p.priority,
                    p.priority,
                    p.max_attempts,
                    at,
                    p.timeout_seconds,
                    list(p.tags),
                    RawJson(p.metadata_json),
                )
            )
        return records
