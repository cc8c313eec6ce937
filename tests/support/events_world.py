"""Shared pieces of the event tests (``tests/events/`` and the ``deliver_events`` branch
test): failing jobs the way the completion buffer does (each failure writes an event),
reading events and job states back, and a loopback HTTP receiver whose answer the test
sets."""

from __future__ import annotations

import asyncio
import json
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import awa
from awa.model import InsertParams, JobState
from awa.store import FinishedAttempt, Store

T0 = datetime(2030, 1, 1, tzinfo=UTC)


SECRET = "s3cret"


async def fail_jobs(store: Store, n: int, clock: awa.FakeClock, kind: str = "flaky") -> list[int]:
    """Insert ``n`` single-attempt jobs, claim them and record their failure (the path the
    completion buffer takes)."""
    for i in range(n):
        await store.jobs.insert_job(InsertParams(kind, {"i": i}, max_attempts=1), now=clock.now())
    jobs = await store.jobs.claim_batch("default", [kind], n, "test-worker", clock.now())
    error = {"kind": "exception", "message": "boom"}
    items = [FinishedAttempt(j.id, j.run_lease, JobState.FAILED, error) for j in jobs]
    assert len(await store.jobs.finalize_batch(items, clock.now())) == n
    return sorted(j.id for j in jobs)


async def job_states(raw: asyncpg.Connection, ids: list[int]) -> list[str]:
    rows = await raw.fetch(
        "SELECT state::text FROM awa.all_jobs WHERE id = ANY($1::bigint[]) ORDER BY id", ids
    )
    return [r["state"] for r in rows]


async def events_of(raw: asyncpg.Connection, kind: str | None = None) -> list[dict[str, Any]]:
    rows = await raw.fetch(
        "SELECT id, kind, job_id, schedule, payload::text AS payload FROM awa.events"
        " WHERE $1::text IS NULL OR kind = $1 ORDER BY id",
        kind,
    )
    return [{**dict(r), "payload": json.loads(r["payload"])} for r in rows]


# --------------------------------------------------------------- a loopback HTTP receiver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """A minimal HTTP/1.1 endpoint (keep-alive, Content-Length bodies) whose answer the test
    sets: ``status`` for every request, or ``decide(event_id)`` per event."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.status = 200
        self.decide: Callable[[int], int] | None = None
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.accepted: Counter[int] = Counter()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/awa?token=t0ps3cret"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while request_line := await reader.readline():
                assert request_line.startswith(b"POST /hooks/awa?token=t0ps3cret ")
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((headers, body))
                event_id = int(json.loads(body)["id"])
                status = self.decide(event_id) if self.decide else self.status
                if 200 <= status < 300:
                    self.accepted[event_id] += 1
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok".encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(free_port())
    yield r
    await r.stop()


def backlog(reader: InMemoryMetricReader) -> dict[str, float]:
    """The ``awa.outbox.backlog`` gauge as sink → value."""
    points: dict[str, float] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "awa.outbox.backlog":
                    for p in metric.data.data_points:
                        points[str((p.attributes or {})["awa.outbox.sink"])] = p.value  # type: ignore[union-attr]
    return points
