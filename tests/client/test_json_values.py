"""JSON values read back equal to what was inserted, on the real server: jsonb keeps
numbers as ``numeric`` and prints them without an exponent, so a large float would come
back as an int unless awa spells it out; values over jsonb's size limit are refused with a
typed error before anything is written."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

import awa
from awa.validation import JSONB_MAX_BYTES

FLOATS: dict[str, Any] = {
    "huge": 1e300,
    "max": 1.7976931348623157e308,
    "negative": -2e16,
    "fraction": 1.5e20,
    "tiny": 1e-300,
    "plain": 0.1,
    "integral": 3.0,
    "nested": [{"x": 6.02e23}, 12345678901234567e10],
    "text": "1e+300 stays text",
    "int": 10**20,
}


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (``10**300 == 1e300`` is False, but
    ``1 == 1.0`` is True, so equality alone would not catch a float read back as an int)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


async def test_floats_read_back_as_the_same_floats(database_url: str) -> None:
    async with awa.Client(database_url) as client:
        one = await client.insert("k", FLOATS, metadata={"ratio": 2.5e30})
        (bulk_id,) = await client.insert_many([client.params("k", FLOATS)])
        for job_id in (one.id, bulk_id):
            stored = await client.get_job(job_id)
            assert same(stored.args, FLOATS), stored.args
        assert same(one.args, FLOATS)  # the returned job shows what was stored
        assert (await client.get_job(one.id)).metadata["ratio"] == 2.5e30


async def test_the_database_sees_numbers_not_text(
    database_url: str, raw: asyncpg.Connection
) -> None:
    """Spelling a float out changes its digits, not its JSON type: SQL over args still
    compares it as a number."""
    async with awa.Client(database_url) as client:
        job = await client.insert("k", {"huge": 1e300})
    row = await raw.fetchrow(
        "SELECT jsonb_typeof(args->'huge'), (args->>'huge')::numeric > 1e299"
        " FROM awa.jobs WHERE id = $1",
        job.id,
    )
    assert row is not None
    assert (row[0], row[1]) == ("number", True)


async def test_args_over_the_jsonb_limit_are_refused_before_any_write(
    database_url: str, raw: asyncpg.Connection
) -> None:
    huge = "x" * JSONB_MAX_BYTES
    async with awa.Client(database_url) as client:
        with pytest.raises(awa.ValidationError, match="larger than jsonb stores") as caught:
            await client.insert("k", {"blob": huge})
        assert caught.value.field == "args"
        with pytest.raises(awa.ValidationError, match="larger than jsonb stores"):
            client.params("k", metadata={"blob": huge})
    assert await raw.fetchval("SELECT count(*) FROM awa.all_jobs") == 0
    assert len(str(caught.value)) < 200  # the error names the value, not 255 MB of it
