"""Typed args (``@client.handler(kind, args=T)``): a dataclass, a pydantic v2 model or a
TypedDict goes in at insert, is stored as plain JSON, and comes back to the handler as a
``T`` when a real runtime runs the job. A stored value that does not fit fails the job at
once (no retries: every attempt would read the same row), naming the type.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, NotRequired, TypedDict

import anyio
import pydantic
import pytest

import awa
from awa.testing import perform


@dataclasses.dataclass(frozen=True)
class Address:
    street: str
    zip: str


@dataclasses.dataclass(frozen=True)
class Signup:
    email: str
    address: Address
    previous: list[Address] = dataclasses.field(default_factory=list)
    referrer: Address | None = None
    score: float = 0.0
    label: str = dataclasses.field(init=False, default="signup")


class Invoice(pydantic.BaseModel):
    number: int
    lines: list[str]
    total: pydantic.condecimal(max_digits=10, decimal_places=2)  # type: ignore[valid-type]


class Ping(TypedDict):
    host: str
    port: int
    note: NotRequired[str]


async def run_until_settled(client: awa.Client, job_id: int) -> awa.Job:
    config = awa.RuntimeConfig(queues={"default": 2}, poll_interval=0.05)
    async with awa.Runtime(client, config):
        with anyio.fail_after(10):
            while True:
                job = await client.get_job(job_id)
                if job.state in (awa.JobState.COMPLETED, awa.JobState.FAILED):
                    return job
                await anyio.sleep(0.02)


async def test_dataclass_args_reach_the_handler_as_the_dataclass(database_url: str) -> None:
    client = awa.Client(database_url)
    received: list[Signup] = []

    @client.handler("signup", args=Signup)
    async def handle(ctx: awa.JobContext[Signup]) -> str:
        received.append(ctx.args)
        return ctx.args.address.zip

    home, old = Address("Main St 1", "12345"), Address("Old Rd 2", "99999")
    async with client:
        job = await client.insert("signup", Signup("a@example.com", home, [old], score=2))
        stored = await client.get_job(job.id)
        assert stored.args == {
            "email": "a@example.com",
            "address": {"street": "Main St 1", "zip": "12345"},
            "previous": [{"street": "Old Rd 2", "zip": "99999"}],
            "referrer": None,
            "score": 2,
        }
        done = await run_until_settled(client, job.id)
    assert done.state is awa.JobState.COMPLETED, done.errors
    assert done.result == "12345"
    assert received == [Signup("a@example.com", home, [old], score=2)]
    assert isinstance(received[0].previous[0], Address)


async def test_pydantic_model_args_are_validated_by_the_model(database_url: str) -> None:
    client = awa.Client(database_url)
    received: list[Invoice] = []

    @client.handler("invoice", args=Invoice)
    async def handle(ctx: awa.JobContext[Invoice]) -> None:
        received.append(ctx.args)

    async with client:
        job = await client.insert("invoice", Invoice(number=7, lines=["a"], total="12.50"))
        assert (await client.get_job(job.id)).args == {
            "number": 7,
            "lines": ["a"],
            "total": "12.50",
        }
        with pytest.raises(awa.ValidationError, match="do not fit Invoice") as caught:
            await client.insert("invoice", {"number": "seven", "lines": [], "total": 1})
        assert caught.value.field == "args"
        done = await run_until_settled(client, job.id)
    assert done.state is awa.JobState.COMPLETED, done.errors
    assert received == [Invoice(number=7, lines=["a"], total="12.50")]


async def test_typeddict_args_are_checked_for_keys_and_scalars(database_url: str) -> None:
    client = awa.Client(database_url)
    received: list[Ping] = []

    @client.handler("ping", args=Ping)
    async def handle(ctx: awa.JobContext[Ping]) -> int:
        received.append(ctx.args)
        return ctx.args["port"]

    async with client:
        job = await client.insert("ping", Ping(host="db", port=5432))
        for bad, problem in [
            ({"host": "db"}, "missing field(s) port"),
            ({"host": "db", "port": 1, "extra": 1}, "unknown field(s) extra"),
            ({"host": "db", "port": "5432"}, "port: expected int, got str"),
            ({"host": "db", "port": True}, "port: expected int, got bool"),
        ]:
            with pytest.raises(awa.ValidationError, match=re.escape(problem)):
                await client.insert("ping", bad)
        done = await run_until_settled(client, job.id)
    assert done.result == 5432
    assert received == [{"host": "db", "port": 5432}]


async def test_an_instance_of_another_type_is_refused_at_insert(database_url: str) -> None:
    client = awa.Client(database_url)
    client.registry.register("signup", _never, args=Signup)
    async with client:
        with pytest.raises(awa.ValidationError, match="expected Signup") as caught:
            await client.insert("signup", Address("x", "y"))
        assert caught.value.field == "args"
        with pytest.raises(awa.ValidationError, match=re.escape("missing field(s) address")):
            await client.insert("signup", {"email": "a@example.com"})
        with pytest.raises(
            awa.ValidationError,
            match=re.escape("address: do not fit Address: missing field(s) street, zip"),
        ):
            await client.insert("signup", {"email": "a@example.com", "address": {}})
        assert await client.list_jobs() == []  # nothing half-written


async def test_args_that_do_not_fit_fail_at_once_naming_the_type(database_url: str) -> None:
    """A producer without the type (another service, psql) stored a shape the handler's type
    does not accept: the job fails on its first attempt with a clear error, never retried,
    and the handler never runs."""
    untyped = awa.Client(database_url)
    typed = awa.Client(database_url)
    ran: list[object] = []

    @typed.handler("signup", args=Signup)
    async def handle(ctx: awa.JobContext[Signup]) -> None:
        ran.append(ctx.args)

    async with untyped, typed:
        job = await untyped.insert("signup", {"email": 5}, max_attempts=10)
        done = await run_until_settled(typed, job.id)
    assert ran == []
    assert done.state is awa.JobState.FAILED
    assert done.attempt == 1
    [error] = done.errors
    assert error["kind"] == "invalid_args"
    assert "its args do not fit Signup: missing field(s) address" in error["message"]


async def test_perform_rebuilds_typed_args_like_the_worker() -> None:
    client = awa.Client("postgresql://unused/db")

    @client.handler("ping", args=Ping)
    async def handle(ctx: awa.JobContext[Ping]) -> str:
        return ctx.args["host"]

    done = await perform(client, "ping", Ping(host="h", port=1))
    assert done.decision.result == "h"


def test_args_must_be_a_record_type() -> None:
    client = awa.Client("postgresql://unused/db")
    with pytest.raises(awa.ConfigError, match="expected a dataclass, a pydantic model"):
        client.registry.register("x", _never, args=int)


def test_insert_options_list_every_keyword_of_params() -> None:
    """``awa.InsertOptions`` types ``insert``'s options; ``Client.params`` implements them:
    one set of names, or a misspelling would pass mypy and fail at run time."""
    import inspect

    keywords = [
        name
        for name, p in inspect.signature(awa.Client.params).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    assert list(awa.InsertOptions.__annotations__) == keywords


async def _never(ctx: awa.JobContext[Any]) -> None:
    raise AssertionError("not run")
