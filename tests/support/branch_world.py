"""The seeded world the built-in branch tests run in (``tests/maintenance/branches/``).

A fixed set of live jobs is seeded by inserting jobs and then moving them with SQL, plus
finished jobs in history; ``World.run`` snapshots the whole of ``awa.jobs`` and
``awa.jobs_done`` before and after one ``run_once``, so each test compares the difference
with the branch's contract: it must change exactly the rows it should, and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

import awa
from awa.config import MaintenanceConfig
from awa.maintenance import Branch, BranchContext
from awa.store import FinishedAttempt, Store
from awa.store.presence import Presence

LIVE = "runtime-live"  # holds its presence lock for the whole test
DEAD = "runtime-dead"  # holds none: crashed

_RUNNING = (
    "state = 'running', attempt = 1, run_lease = 7, claimed_by = '{who}', "
    "attempted_at = now() - interval '{age}', heartbeat_at = now() - interval '{beat}', "
    "deadline_at = {deadline}"
)


def running(who: str, age: str, beat: str = "0 s", deadline: str = "NULL") -> str:
    return _RUNNING.format(who=who, age=age, beat=beat, deadline=deadline)


def waiting(timeout: str) -> str:
    return (
        "state = 'waiting_external', attempt = 1, run_lease = 3, claimed_by = '"
        + LIVE
        + "', attempted_at = now() - interval '1 min', heartbeat_at = NULL, "
        "callback_id = gen_random_uuid(), callback_timeout_at = " + timeout
    )


#: name -> (max_attempts, SQL SET clause moving the freshly inserted job into its state).
SEEDS: dict[str, tuple[int, str]] = {
    "available": (25, "state = 'available', run_at = now()"),
    "available_old": (
        25,
        "state = 'available', priority = 3, original_priority = 3, "
        "run_at = now() - interval '1 hour'",
    ),
    "available_top": (
        25,
        "state = 'available', priority = 1, original_priority = 1, "
        "run_at = now() - interval '1 hour'",
    ),
    "scheduled_due": (25, "state = 'scheduled', run_at = now() - interval '10 s'"),
    "scheduled_future": (25, "state = 'scheduled', run_at = now() + interval '1 hour'"),
    "retryable_due": (25, "state = 'retryable', attempt = 1, run_at = now() - interval '10 s'"),
    "retryable_future": (
        25,
        "state = 'retryable', attempt = 1, run_at = now() + interval '2 hours'",
    ),
    "running_fresh": (25, running(LIVE, "10 s", deadline="now() + interval '1 hour'")),
    "running_stale": (25, running(LIVE, "1 hour", beat="1 hour")),
    "running_stale_last": (1, running(LIVE, "1 hour", beat="1 hour")),
    "running_orphan": (25, running(DEAD, "2 min", deadline="now() + interval '1 hour'")),
    "running_orphan_last": (1, running(DEAD, "2 min")),
    "running_orphan_young": (25, running(DEAD, "1 s")),
    "running_deadline": (25, running(LIVE, "1 hour", deadline="now() - interval '1 min'")),
    "running_deadline_last": (1, running(LIVE, "1 hour", deadline="now() - interval '1 min'")),
    "running_deadline_grace": (25, running(LIVE, "1 hour", deadline="now() - interval '1 s'")),
    "waiting_expired": (25, waiting("now() - interval '10 s'")),
    "waiting_expired_last": (1, waiting("now() - interval '10 s'")),
    "waiting_pending": (25, waiting("now() + interval '1 hour'")),
}

#: Finished jobs seeded in history: name -> final state.
FINISHED = {
    "done_completed": awa.JobState.COMPLETED,
    "done_failed": awa.JobState.FAILED,
    "done_cancelled": awa.JobState.CANCELLED,
}

#: crash_grace is large so that "2 min" orphans are rescued and "1 s" ones are not, however
#: slowly the test runs.
CONFIG = MaintenanceConfig(startup_jitter=0, crash_grace=30.0, heartbeat_staleness=30.0)

Snapshot = dict[int, tuple[str, dict[str, Any]]]


@dataclass
class World:
    url: str
    raw: asyncpg.Connection
    store: Store
    ids: dict[str, int]

    def ctx(self, config: MaintenanceConfig = CONFIG) -> BranchContext:
        return BranchContext(store=self.store, clock=awa.SystemClock(), config=config)

    async def snapshot(self) -> Snapshot:
        live = await self.raw.fetch("SELECT * FROM awa.jobs")
        done = await self.raw.fetch("SELECT * FROM awa.jobs_done")
        out: Snapshot = {r["id"]: ("live", dict(r)) for r in live}
        out.update({r["id"]: ("done", dict(r)) for r in done})
        return out

    def names(self, ids: set[int]) -> set[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return {by_id.get(i, str(i)) for i in ids}

    async def run(
        self, branch: Branch, config: MaintenanceConfig = CONFIG
    ) -> tuple[Any, Snapshot, Snapshot, set[str]]:
        before = await self.snapshot()
        result = await branch.run_once(self.ctx(config))
        after = await self.snapshot()
        changed = {i for i in before.keys() | after.keys() if before.get(i) != after.get(i)}
        return result, before, after, self.names(changed)

    async def live(self, name: str) -> asyncpg.Record:
        row = await self.raw.fetchrow("SELECT * FROM awa.jobs WHERE id = $1", self.ids[name])
        assert row is not None, f"{name} is not live"
        return row

    async def done(self, name: str) -> asyncpg.Record:
        row = await self.raw.fetchrow("SELECT * FROM awa.jobs_done WHERE id = $1", self.ids[name])
        assert row is not None, f"{name} is not in history"
        return row


@asynccontextmanager
async def seeded_world(database_url: str, raw: asyncpg.Connection) -> AsyncIterator[World]:
    """A ``World`` with every seed in place (and ``LIVE``'s presence lock held) until exit."""
    store = await Store.open(database_url, max_size=4)
    presence = await Presence.acquire(database_url, LIVE)
    try:
        ids: dict[str, int] = {}
        # History first: claim and finish jobs of their own kind.
        for name in FINISHED:
            job = await store.jobs.insert_job(awa.InsertParams("done", {"name": name}))
            ids[name] = job.id
        claimed = {j.id: j for j in await store.jobs.claim_batch("default", ["done"], 10, LIVE)}
        assert set(claimed) == {ids[n] for n in FINISHED}
        completed = ids["done_completed"]
        assert await store.jobs.complete_batch(
            [completed], [claimed[completed].run_lease], [{"ok": 1}]
        )
        finals = [
            FinishedAttempt(ids[n], claimed[ids[n]].run_lease, state, {"kind": "test"})
            for n, state in FINISHED.items()
            if state is not awa.JobState.COMPLETED
        ]
        assert len(await store.jobs.finalize_batch(finals)) == 2
        # Live jobs in every state.
        for name, (max_attempts, assignment) in SEEDS.items():
            job = await store.jobs.insert_job(
                awa.InsertParams("work", {"name": name}, max_attempts=max_attempts)
            )
            ids[name] = job.id
            await raw.execute(f"UPDATE awa.jobs SET {assignment} WHERE id = $1", job.id)
        states = pairs(await raw.fetch("SELECT id, state::text FROM awa.jobs"))
        assert len(states) == len(SEEDS)
        yield World(database_url, raw, store, ids)
    finally:
        await presence.close()
        await store.close()


def rescued_records(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in errors if e.get("kind") == "rescued"]


def decode(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def place(world: World, slot: int, age: str, state: str = "completed") -> int:
    """Copy a history row into ``slot`` with a new id, finalized ``age`` ago."""
    return int(
        await world.raw.fetchval(
            "INSERT INTO awa.jobs_done (slot, id, kind, queue, args, state, priority,"
            " original_priority, attempt, max_attempts, run_at, created_at, attempted_at,"
            " finalized_at, timeout_s, tags, metadata, errors, run_lease)"
            " SELECT $1, nextval('awa.job_id_seq'), kind, queue, args, $3::awa.job_state,"
            " priority, original_priority, attempt, max_attempts, run_at, created_at,"
            " attempted_at, now() - $2::text::interval, timeout_s, tags, metadata, errors,"
            " run_lease"
            " FROM awa.jobs_done WHERE id = $4 RETURNING id",
            slot,
            age,
            state,
            world.ids["done_completed"],
        )
    )


async def one(conn: asyncpg.Connection, query: str, *args: Any) -> asyncpg.Record:
    """The one row ``query`` returns (typed: a missing row fails here, by name)."""
    row = await conn.fetchrow(query, *args)
    assert row is not None, f"no row for {query!r}"
    return row


def pairs(rows: list[asyncpg.Record]) -> dict[Any, Any]:
    """``{first column: second column}`` of ``rows``."""
    return {row[0]: row[1] for row in rows}
