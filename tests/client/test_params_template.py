"""Bulk inserts of jobs built from ``Client.params``'s templates (``awa.insert_template``):
a mistake in the 10,000th job of a batch is still named and nothing is inserted, and each
stored row has its own job's values; the COPY encoder's per-batch bookkeeping and
``insert_many``'s quick type check. The template's own rules are in
tests/unit/test_insert_template.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

import awa
from awa.model import InsertParams
from awa.store.copy_stream import CopyEncoder

RUN_AT = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[awa.Client]:
    async with awa.Client(database_url) as c:
        yield c


async def count_jobs(raw: asyncpg.Connection) -> int:
    return int(await raw.fetchval("SELECT count(*) FROM awa.all_jobs"))


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"args": {"s": "\ud800"}}, "args"),
        ({"args": {"x": float("nan")}}, "args"),
        ({"run_at": datetime(2030, 1, 1)}, "run_at"),
        ({"metadata": {"m": {1, 2}}}, "metadata"),
        ({"priority": 0}, "priority"),
    ],
)
async def test_bad_input_in_the_10000th_job_is_named_and_nothing_is_inserted(
    client: awa.Client, raw: asyncpg.Connection, bad: dict[str, Any], field: str
) -> None:
    items = [client.params("bulk", {"i": i}) for i in range(9_999)]
    options = dict(bad)
    args = options.pop("args", {"i": 9_999})
    with pytest.raises(awa.ValidationError) as caught:
        items.append(client.params("bulk", args, **options))
        await client.insert_many(items)
    assert caught.value.field == field
    assert len(items) == 9_999
    # an item that is not InsertParams at the end of a big batch is named by position
    with pytest.raises(awa.ValidationError) as position:
        await client.insert_many([*items, {"kind": "bulk"}])  # type: ignore[list-item]
    assert position.value.field == "jobs[9999]"
    assert await count_jobs(raw) == 0
    # the batch itself was fine
    assert len(await client.insert_many(items)) == 9_999


async def test_templated_jobs_are_stored_with_their_own_values(
    client: awa.Client, raw: asyncpg.Connection
) -> None:
    items = [
        client.params("bulk", {"i": 0}, tags=["t"], metadata={"m": 0}, priority=1),
        client.params("bulk", {"i": 1}, run_at=RUN_AT),
        client.params("bulk", {"i": 2}, tags=["t"], priority=1),
        client.params("bulk", {"i": 3}),
    ]
    ids = await client.insert_many(items)
    rows = await raw.fetch(
        "SELECT id, args->>'i' AS i, tags, metadata::text AS metadata, priority, state::text"
        " FROM awa.jobs WHERE id = ANY($1::bigint[]) ORDER BY id",
        ids,
    )
    got = {int(r["i"]): (r["tags"], r["metadata"], r["priority"], r["state"]) for r in rows}
    assert got == {
        0: (["t"], '{"m": 0}', 1, "available"),
        1: ([], "{}", 2, "scheduled"),
        2: (["t"], "{}", 1, "available"),
        3: ([], "{}", 2, "available"),
    }


def test_the_copy_encoder_wakes_each_queue_with_a_due_job() -> None:
    """The encoder notes a queue to wake once per distinct shared fields, not per job: every
    queue with a due job (no run_at, or one not after the batch's instant) is woken, a queue
    with only later jobs is not, and the earliest later run_at is kept for the leader."""
    at = datetime(2030, 1, 1, tzinfo=UTC)
    hour = timedelta(hours=1)
    params = [
        InsertParams("k", queue="later", run_at=at + 2 * hour),
        InsertParams("k", queue="later", run_at=at + hour),
        InsertParams("k", queue="mixed", run_at=at + hour / 2),
        InsertParams("k", queue="mixed"),
        InsertParams("k", queue="past", run_at=at - hour),
        InsertParams("k", queue="now", run_at=at, tags=["t"]),
        InsertParams("k", queue="mixed", tags=("t",)),
        InsertParams("k", queue="mixed", tags=["t"]),
    ]
    encoder = CopyEncoder(at)
    rows = b"".join(encoder.chunks(params, range(1, len(params) + 1)))
    assert encoder.woken == {"mixed", "past", "now"}
    assert encoder.earliest_deferred == at + hour / 2
    assert rows.count(b"scheduled") == 3 and rows.count(b"available") == 5


class TaggedParams(InsertParams):
    """A subclass: insert_many's quick type check must fall back to isinstance for it."""


async def test_insert_many_takes_subclasses_of_insert_params(
    client: awa.Client, raw: asyncpg.Connection
) -> None:
    items = [client.params("bulk", {"i": 0}), TaggedParams("bulk", {"i": 1})]
    assert len(await client.insert_many(items)) == 2
    assert await count_jobs(raw) == 2
