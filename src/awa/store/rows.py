"""Turning database rows into model objects (one place, so column changes touch one file).

A row may have been written by any SQL client, so building a ``Job`` never raises for the
shape of its JSON columns: a claim that raised here would strand its whole batch in
'running'. Values Python cannot decode arrive as ``UndecodableJson`` markers (see
``awa.model``); metadata that is not a JSON object becomes ``UnreadableMetadata``;
the runtime fails such a job instead of running it (``awa.worker.outcomes.refuse``).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from awa.db.connect import decode_json
from awa.errors import safe_repr
from awa.model import Job, JobState, UndecodableJson, UnreadableMetadata

__all__ = ["errors_column", "job_from_row", "metadata_column"]


def job_from_row(
    row: asyncpg.Record, *, duplicate: bool = False, json_as_text: bool = False
) -> Job:
    """Build a ``Job`` from a row of ``awa.all_jobs`` or a claim's RETURNING list."""
    get = row.get

    def _json(value: Any) -> Any:
        # Queries that may run on a caller's own connection (which lacks awa's jsonb codec)
        # cast jsonb to text and say so with json_as_text.
        return decode_json(value) if json_as_text and value is not None else value

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
        metadata=metadata_column(_json(get("metadata"))),
        errors=errors_column(_json(get("errors"))),
        progress=_json(get("progress")),
        unique_key=get("unique_key"),
        run_lease=int(get("run_lease") or 0),
        claimed_by=get("claimed_by"),
        result=_json(get("result")),
        duplicate=duplicate,
    )


def metadata_column(value: Any) -> dict[str, Any]:
    """A decoded ``metadata`` column as a dict, never raising on an odd stored shape."""
    if isinstance(value, dict):
        return dict(value)
    if value is None:
        return {}
    if isinstance(value, UndecodableJson):
        return UnreadableMetadata(f"stored metadata is {value!r}")
    return UnreadableMetadata(f"stored metadata is not a JSON object: {safe_repr(value)}")


def errors_column(value: Any) -> list[dict[str, Any]]:
    """A decoded ``errors`` column as a list, never raising on an odd stored shape."""
    if isinstance(value, list):
        return list(value)
    if value is None:
        return []
    shown = repr(value) if isinstance(value, UndecodableJson) else safe_repr(value)
    return [{"kind": "unreadable", "message": f"stored errors are not a JSON array: {shown}"}]
