"""What PostgreSQL says it did: ``pg_stat_statements`` top statements, WAL I/O counts and
a database's transaction count."""

from __future__ import annotations

from typing import Any

from awa.db import connect


async def reset_pg_stats(url: str) -> None:
    """Enable pg_stat_statements in this database and forget what it saw so far."""
    conn = await connect(url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        dbid = await conn.fetchval("SELECT oid FROM pg_database WHERE datname = current_database()")
        await conn.execute("SELECT pg_stat_statements_reset(0, $1, 0)", dbid)
    finally:
        await conn.close()


async def pg_stat_statements_top(url: str, limit: int = 12) -> list[dict[str, Any]]:
    """The statements of this database by total execution time (commit time excluded)."""
    conn = await connect(url)
    try:
        rows = await conn.fetch(
            """SELECT calls, rows, total_exec_time, mean_exec_time, max_exec_time,
                      shared_blks_hit, shared_blks_read, wal_records, wal_fpi, wal_bytes,
                      regexp_replace(left(query, 4000), '\\s+', ' ', 'g') AS query
                 FROM pg_stat_statements
                WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND query NOT ILIKE '%pg_stat_statements%'
                ORDER BY total_exec_time DESC
                LIMIT $1""",
            limit,
        )
    finally:
        await conn.close()
    return [
        {
            "calls": int(r["calls"]),
            "rows": int(r["rows"]),
            "total_ms": round(float(r["total_exec_time"]), 2),
            "mean_ms": round(float(r["mean_exec_time"]), 4),
            "max_ms": round(float(r["max_exec_time"]), 3),
            "rows_per_call": round(int(r["rows"]) / max(1, int(r["calls"])), 1),
            "shared_blks_hit": int(r["shared_blks_hit"]),
            "shared_blks_read": int(r["shared_blks_read"]),
            "wal_records": int(r["wal_records"]),
            "wal_fpi": int(r["wal_fpi"]),
            "wal_bytes": int(r["wal_bytes"]),
            "query": str(r["query"]),
        }
        for r in rows
    ]


async def wal_io_snapshot(url: str) -> dict[str, float]:
    """Cluster-wide WAL writes/fsyncs (PostgreSQL 18 ``pg_stat_io``; empty elsewhere)."""
    conn = await connect(url)
    try:
        try:
            row = await conn.fetchrow(
                """SELECT coalesce(sum(writes), 0) AS writes, coalesce(sum(fsyncs), 0) AS fsyncs,
                          coalesce(sum(fsync_time), 0) AS fsync_ms,
                          coalesce(sum(write_time), 0) AS write_ms
                     FROM pg_stat_io WHERE object = 'wal'"""
            )
        except Exception:  # older servers: no WAL rows in pg_stat_io
            return {}
    finally:
        await conn.close()
    assert row is not None
    return {k: float(row[k]) for k in ("writes", "fsyncs", "fsync_ms", "write_ms")}


async def xact_count(admin: Any, dbname: str) -> int:
    """``xact_commit + xact_rollback`` of ``dbname`` in ``pg_stat_database``. Read it over a
    connection to another database (``admin``), so the reading adds nothing to the count.
    A backend flushes its counters at most once a second, and one that goes quiet up to
    ~10 s late: sample windows of several seconds, after a settle of more than 10 s."""
    value = await admin.fetchval(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", dbname
    )
    return int(value)
