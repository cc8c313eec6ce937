"""The big-table backlog of issue 19, built set-based (``INSERT ... SELECT
generate_series``), shared by ``big_tables.py`` (which measures hygiene and claims on it)
and ``long_horizon.py --backlog`` (which runs a steady workload on top of it for an hour).

What ``build`` writes into a migrated database (sizes are parameters, issue 19's in
``BacklogSizes()``):

- ``history`` finished jobs in the history ring, spread over slots 0..5, one in twenty
  failed, finalized within the 20 hours before the build; a tenth of them (at most 1M)
  went through ``awa.jobs`` as a burst first, so its heap keeps the pages a real burst
  leaves;
- ``live`` live jobs of kinds ``k0..k6`` in queues ``q0..q4``: half scheduled and a fifth
  retryable (due in 30 days), a quarter available (waiting a minute), a twentieth running
  (claimed by ``bench-runtime``, which holds no presence lock);
- ``unique_keys`` unique keys, half of them held by jobs no longer stored (the GC's work);
- ``unhandled`` available jobs of kind ``nobody_handles_this`` at the head of queue
  ``shared_queue`` (priority 1, two hours old), and ``stock`` claimable ``work`` jobs behind
  them and in queue ``clean``.

Building 10M rows takes minutes, so ``template_database`` builds it once per set of sizes
into a database kept on the server, and ``clone`` copies it (``CREATE DATABASE ...
TEMPLATE``) for each run: two concurrent runs wait for one build (an advisory lock on the
maintenance database) instead of each spending the time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

from awa.db import connect, migrate

#: Bumped when the built data changes shape: an older build is then rebuilt.
BUILD_VERSION = 1
#: Advisory lock class (on the server's maintenance database) serialising the builds and
#: copies of one template; the second key is ``hashtext(template name)``.
_BUILD_LOCK = 0x61776162  # "awab"
_LOCK_SQL = "SELECT pg_advisory_lock($1::int, hashtext($2::text))"
_UNLOCK_SQL = "SELECT pg_advisory_unlock($1::int, hashtext($2::text))"

_COLUMNS = "kind, queue, args, state, priority, original_priority, max_attempts, run_at, created_at"


@dataclass(frozen=True)
class BacklogSizes:
    """Row counts of the backlog; the defaults are issue 19's big-table figures."""

    history: int = 10_000_000
    live: int = 1_000_000
    unique_keys: int = 100_000
    unhandled: int = 200_000
    stock: int = 20_000
    shared_queue: str = "shared"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def template_name(self) -> str:
        """A database name that says what was built (so other sizes get another one)."""
        q = "".join(c for c in self.shared_queue if c.isalnum())[:12]
        return (
            f"awa_backlog_v{BUILD_VERSION}_h{self.history}_l{self.live}_k{self.unique_keys}"
            f"_u{self.unhandled}_s{self.stock}_{q}"
        )


def _history_sql(first: int, count: int) -> str:
    """Finished jobs ``first .. first+count-1`` straight into the ring, over slots 0..5,
    finalized within the 20 hours before the build (inside the completed retention)."""
    return f"""
    INSERT INTO awa.jobs_done (slot, id, kind, queue, args, state, priority,
        original_priority, attempt, max_attempts, run_at, created_at, attempted_at,
        finalized_at, tags, metadata, errors, run_lease)
    SELECT (g % 6)::smallint, nextval('awa.job_id_seq'), 'k' || (g % 7), 'q' || (g % 5),
           '{{}}', CASE WHEN g % 20 = 0 THEN 'failed' ELSE 'completed' END::awa.job_state,
           2, 2, 1, 5, b.t - interval '21 hours', b.t - interval '21 hours',
           b.t - interval '20 hours', b.t - (g % 72000) * interval '1 s', '{{}}', '{{}}',
           '[]', 1
      FROM generate_series({first}, {first + count - 1}) g, bench_big b"""


async def build(
    conn: Any,
    history: int,
    live: int,
    unhandled: int,
    stock: int,
    *,
    unique_keys: int = 100_000,
    shared_queue: str = "shared",
) -> None:
    """The data set described in the module docstring (set-based, a few minutes at 10M)."""
    await conn.execute(
        "CREATE TABLE bench_big (t timestamptz, history bigint, live bigint, version int)"
    )
    await conn.execute("INSERT INTO bench_big VALUES (now(), $1, $2, $3)", history, live, 0)
    burst = min(history // 10, 1_000_000)
    step = 1_000_000
    for first in range(1, history - burst + 1, step):
        await conn.execute(_history_sql(first, min(step, history - burst - first + 1)))
    # The burst: through awa.jobs and on to history, one job in 5,000 left behind (live).
    await conn.execute(
        f"INSERT INTO awa.jobs ({_COLUMNS}) SELECT 'k' || (g % 7), 'q' || (g % 5), '{{}}',"
        " 'scheduled', 2, 2, 5, b.t + interval '30 days', b.t"
        " FROM generate_series(1, $1::int) g, bench_big b",
        burst,
    )
    await conn.execute(
        "WITH gone AS (DELETE FROM awa.jobs j WHERE j.id % 5000 <> 0 RETURNING j)"
        " INSERT INTO awa.jobs_done SELECT h.* FROM gone g, bench_big b,"
        " awa.history_row(g.j, 5::smallint, 'completed', b.t - interval '1 hour',"
        " (g.j).errors, (g.j).progress, NULL) h"
    )
    # Live: 50 % scheduled, 20 % retryable (due later), 25 % available (handled kinds,
    # waiting a minute: nothing to age), 5 % running (beating now).
    await conn.execute(
        f"INSERT INTO awa.jobs ({_COLUMNS}, heartbeat_at, attempted_at, claimed_by, attempt)"
        " SELECT 'k' || (g % 7), 'q' || (g % 5), '{}', s.state, 2, 2, 5,"
        "  CASE WHEN s.state = 'available' THEN b.t - interval '1 min'"
        "       ELSE b.t + interval '30 days' END, b.t,"
        "  CASE WHEN s.state = 'running' THEN b.t + interval '2 hours' END,"
        "  CASE WHEN s.state = 'running' THEN b.t END,"
        "  CASE WHEN s.state = 'running' THEN 'bench-runtime' END,"
        "  CASE WHEN s.state = 'running' THEN 1 ELSE 0 END"
        " FROM generate_series(1, $1::int) g, bench_big b,"
        " LATERAL (SELECT (CASE WHEN g % 20 < 10 THEN 'scheduled' WHEN g % 20 < 14"
        "   THEN 'retryable' WHEN g % 20 < 19 THEN 'available' ELSE 'running' END)::awa.job_state"
        "   AS state) s",
        live,
    )
    # Claim stock: handled jobs in the shared queue (behind the unhandled ones) and in
    # 'clean'; 100 in 'hb' for the heartbeat measurement.
    for queue, kind, count, priority, age in (
        (shared_queue, "nobody_handles_this", unhandled, 1, "2 hours"),
        (shared_queue, "work", stock, 2, "1 min"),
        ("clean", "work", stock, 2, "1 min"),
        ("hb", "work", 100, 2, "1 min"),
    ):
        await conn.execute(
            f"INSERT INTO awa.jobs ({_COLUMNS}) SELECT $1, $2, '{{}}', 'available', $3, $3, 5,"
            f" b.t - interval '{age}' + g * interval '1 ms', b.t"
            " FROM generate_series(1, $4::int) g, bench_big b",
            kind,
            queue,
            priority,
            count,
        )
    # Unique keys: odd ones held by finished jobs still stored, even ones by jobs gone.
    await conn.execute(
        "INSERT INTO awa.job_unique (unique_key, job_id)"
        " SELECT 'key-' || g, CASE WHEN g % 2 = 0 THEN -g ELSE m.id + g END"
        " FROM generate_series(1, $1::int) g, (SELECT min(id) AS id FROM awa.jobs_done) m",
        unique_keys,
    )
    await conn.execute("UPDATE bench_big SET version = $1", BUILD_VERSION)
    for table in ("awa.jobs", "awa.jobs_done", "awa.job_unique"):
        await conn.execute(f"VACUUM ANALYZE {table}")


async def built_version(conn: Any) -> int | None:
    """``BUILD_VERSION`` of the data in ``conn``'s database, None when nothing was built."""
    if not await conn.fetchval("SELECT to_regclass('bench_big')"):
        return None
    value = await conn.fetchval("SELECT version FROM bench_big")
    return None if value is None else int(value)


async def template_database(server_url: str, sizes: BacklogSizes) -> tuple[str, float | None]:
    """The name of a database holding the backlog of ``sizes`` (built now if missing or of
    an older ``BUILD_VERSION``), and the build time in seconds (None when it was there).
    Builds are serialised by an advisory lock held on the server's own database, so a
    second caller waits for the first one's build and then finds it done."""
    from _support.server import with_database

    name = sizes.template_name()
    admin = await connect(server_url)
    try:
        await admin.execute(_LOCK_SQL, _BUILD_LOCK, name)
        try:
            exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if exists:
                conn = await connect(with_database(server_url, name))
                try:
                    if await built_version(conn) == BUILD_VERSION:
                        return name, None
                finally:
                    await conn.close()
                await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
            t0 = time.perf_counter()
            conn = await connect(with_database(server_url, name))
            try:
                await migrate(conn)
                await build(
                    conn,
                    sizes.history,
                    sizes.live,
                    sizes.unhandled,
                    sizes.stock,
                    unique_keys=sizes.unique_keys,
                    shared_queue=sizes.shared_queue,
                )
            except BaseException:
                await conn.close()
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                raise
            await conn.close()
            return name, time.perf_counter() - t0
        finally:
            await admin.execute(_UNLOCK_SQL, _BUILD_LOCK, name)
    finally:
        await admin.close()


async def clone(server_url: str, template: str, name: str) -> float:
    """CREATE DATABASE ``name`` as a copy of ``template`` (FILE_COPY: a file copy after a
    checkpoint, rather than writing gigabytes of WAL); returns the seconds it took. The
    template must have no other connection while it is copied, so clones are serialised
    under the build lock too."""
    admin = await connect(server_url)
    try:
        await admin.execute(_LOCK_SQL, _BUILD_LOCK, template)
        try:
            t0 = time.perf_counter()
            await admin.execute(
                f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY'
            )
            return time.perf_counter() - t0
        finally:
            await admin.execute(_UNLOCK_SQL, _BUILD_LOCK, template)
    finally:
        await admin.close()


@asynccontextmanager
async def cloned_database(
    server_url: str, template: str, label: str
) -> AsyncIterator[tuple[str, float]]:
    """A throwaway copy of ``template`` (``clone``), migrated to this checkout's schema:
    yields its URL and the seconds the copy took; DROPped after."""
    from _support.server import drop_database, migrate_database, with_database

    name = f"awa_bench_{label}_{uuid.uuid4().hex[:8]}"
    clone_s = await clone(server_url, template, name)
    url = with_database(server_url, name)
    try:
        await migrate_database(url)
        yield url, clone_s
    finally:
        await drop_database(server_url, name)
