"""Shared pieces of the runtime tests: a client handling every seeded kind, and seeding jobs
straight into a state with SQL (as a crashed runtime would have left them)."""

from __future__ import annotations

from collections import Counter

import asyncpg

import awa

KINDS = ("k_available", "k_scheduled", "k_retryable", "k_stale", "k_orphan", "k_waiting")


def counting_client(url: str, calls: Counter[str]) -> awa.Client:
    """A client with a handler for every seeded kind, each counting its calls."""
    client = awa.Client(url)
    for kind in KINDS:

        async def handler(ctx: awa.JobContext, _kind: str = kind) -> None:
            calls[_kind] += 1

        client.handler(kind)(handler)
    return client


async def seed(raw: asyncpg.Connection, kind: str, set_clause: str, max_attempts: int = 5) -> int:
    """Insert a job of ``kind`` and move it into a state with SQL."""
    job_id: int = await raw.fetchval(
        "INSERT INTO awa.jobs (kind, queue, state, priority, original_priority, max_attempts,"
        " run_at, created_at) VALUES ($1, 'default', 'available', 2, 2, $2, now(), now())"
        " RETURNING id",
        kind,
        max_attempts,
    )
    await raw.execute(f"UPDATE awa.jobs SET {set_clause} WHERE id = $1", job_id)
    return job_id


RUNNING_BY = (
    "state = 'running', attempt = 1, run_lease = 5, claimed_by = '{who}', "
    "attempted_at = now() - interval '2 min', heartbeat_at = now() - interval '{beat}'"
)


async def job_state(raw: asyncpg.Connection, job_id: int) -> str:
    return str(await raw.fetchval("SELECT state FROM awa.all_jobs WHERE id = $1", job_id))


async def in_state(raw: asyncpg.Connection, job_id: int, state: str) -> bool:
    return await job_state(raw, job_id) == state
