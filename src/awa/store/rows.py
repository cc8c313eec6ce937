"""Turning database rows into model objects (one place, so column changes touch one file)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from awa.model import Job, JobState

__all__ = ["job_from_row"]


def job_from_row(
    row: asyncpg.Record, *, duplicate: bool = False, json_as_text: bool = False
) -> Job:
    """Build a ``Job`` from a row of ``awa.all_jobs`` or a claim's RETURNING list."""
    get = row.get

    def _json(value: Any) -> Any:
        # Queries that may run on a caller's own connection (which lacks awa's jsonb codec)
        # cast jsonb to text and say so with json_as_text.
        return json.loads(value) if json_as_text and value is not None else value

    return Job(
        id=int(row["id"]),
        kind=row["kind"],
        queue=row["queue"],
        args=_json(row["args"]),
        state=JobState(get("state") or JobState.RUNNING),
        priority=int(row["priority"]),
        attempt=int(row["attempt"]),
        max_attempts=int(row["max_attempts"]),
        run_at=row["run_at"],
        created_at=row["created_at"],
        attempted_at=get("attempted_at"),
        finalized_at=get("finalized_at"),
        heartbeat_at=get("heartbeat_at"),
        deadline_at=get("deadline_at"),
        timeout=get("timeout_s"),
        tags=list(get("tags") or []),
        metadata=dict(_json(get("metadata")) or {}),
        errors=list(_json(get("errors")) or []),
        progress=_json(get("progress")),
        unique_key=get("unique_key"),
        run_lease=int(get("run_lease") or 0),
        claimed_by=get("claimed_by"),
        result=_json(get("result")),
        duplicate=duplicate,
    )
