"""Callbacks (external waits) and the callback ingress, on a real PostgreSQL and over real
HTTP on loopback (the ingress served by uvicorn).

A handler registers a callback, hands it out (here: into a memory stream the test reads),
and parks its job. The test then resolves it through ``awa.callbacks.Callbacks`` or the
ingress and checks what the job became. Every refusal is checked to change nothing: the
job's row and the callback's row are compared before and after.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import anyio
import asyncpg
import httpx
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

import awa
from awa.callbacks import SIGNATURE_HEADER, Callbacks, sign_body, sign_callback, verify_signature
from awa.config import MaintenanceConfig
from awa.errors import (
    CallbackExpired,
    CallbackNotFound,
    CallbackTokenInvalid,
    InvalidTransition,
)
from awa.maintenance import BranchContext
from awa.maintenance.branches.rescue_expired_callbacks import RescueExpiredCallbacks
from awa.model import Callback
from awa.outcomes import WaitForCallback
from awa.store.callbacks import ParkedAttempt
from awa.web import serve
from awa.web.asgi import Receive, Scope, Send, lifespan, send_text
from awa.web.ingress import callback_app

Channel = tuple[MemoryObjectSendStream[Callback], MemoryObjectReceiveStream[Callback]]


@pytest.fixture
def channel() -> Iterator[Channel]:
    """Where handlers hand out the callbacks they register (closed after the test)."""
    send, receive = anyio.create_memory_object_stream[Callback](200)
    yield send, receive
    send.close()
    receive.close()


def make_config(**overrides: Any) -> awa.RuntimeConfig:
    options: dict[str, Any] = {
        "queues": {"default": 8},
        "heartbeat_interval": 0.1,
        "poll_interval": 0.2,
        "shutdown_grace": 5.0,
    }
    options.update(overrides)
    return awa.RuntimeConfig(**options)


def no_maintenance() -> dict[str, Any]:
    """Runtime options for tests that must not have rescue racing them."""
    return {"run_maintenance": False}


async def wait_job(
    client: awa.Client, job_id: int, predicate: Callable[[awa.Job], bool], timeout: float = 15.0
) -> awa.Job:
    with anyio.fail_after(timeout):
        while True:
            job = await client.get_job(job_id)
            if predicate(job):
                return job
            await anyio.sleep(0.02)


def in_state(*states: awa.JobState) -> Callable[[awa.Job], bool]:
    return lambda job: job.state in states


WAITING = in_state(awa.JobState.WAITING_EXTERNAL)
DONE = in_state(awa.JobState.COMPLETED, awa.JobState.FAILED, awa.JobState.CANCELLED)


@contextlib.asynccontextmanager
async def ingress(client: awa.Client, **options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The callback ingress served by uvicorn on a free loopback port, and an HTTP client
    pointed at it."""
    app = callback_app(Callbacks(client), **options)
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, app, "127.0.0.1", 0)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            yield http
        tg.cancel_scope.cancel()


def post(
    http: httpx.AsyncClient,
    callback_id: str,
    token: str | None,
    body: Any,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Awaitable[httpx.Response]:
    sent = dict(headers or {})
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    content = raw if raw is not None else json.dumps(body).encode()
    return http.post(f"/{callback_id}", content=content, headers=sent)


async def rows(raw: asyncpg.Connection, job_id: int, callback_id: str) -> tuple[Any, Any]:
    """Everything a refusal must leave alone: the job's live row (or its history row) and
    the callback's row."""
    job = await raw.fetchrow("SELECT * FROM awa.jobs WHERE id = $1", job_id)
    if job is None:
        job = await raw.fetchrow("SELECT * FROM awa.jobs_done WHERE id = $1", job_id)
    callback = await raw.fetchrow(
        "SELECT * FROM awa.callbacks WHERE id = $1", uuid.UUID(callback_id)
    )
    return dict(job) if job else None, dict(callback) if callback else None


def parking_handler(
    client: awa.Client,
    kind: str,
    registered: MemoryObjectSendStream[Callback],
    *,
    timeout: float = 60.0,
    resume: bool = False,
    calls: list[Any] | None = None,
) -> None:
    """A handler that parks on a fresh callback, or (when resumed) returns what it got."""

    @client.handler(kind)
    async def handler(ctx: awa.JobContext) -> Any:
        if calls is not None:
            calls.append(ctx.callback)
        if ctx.callback is not None:
            return {"resumed_with": ctx.callback.payload}
        callback = await ctx.register_callback(timeout=timeout, resume=resume)
        await registered.send(callback)
        return WaitForCallback(callback)


# ---------------------------------------------------------------------- resolution


async def test_runtime_gives_handlers_a_callback_registrar(database_url: str) -> None:
    """The dispatcher must build each JobContext with a registrar and the client's clock;
    without them every other test here fails on a timeout, this one says why."""
    client = awa.Client(database_url)

    @client.handler("probe")
    async def probe(ctx: awa.JobContext) -> str:
        callback = await ctx.register_callback(timeout=60)
        return callback.id

    async with client, awa.Runtime(client, make_config(), **no_maintenance()):
        job = await client.insert("probe", {}, max_attempts=1)
        done = await wait_job(client, job.id, DONE)
    assert done.state is awa.JobState.COMPLETED, done.errors[-1]["message"]
    uuid.UUID(done.result)


async def test_completed_callback_records_payload_as_result(
    database_url: str, raw: asyncpg.Connection, channel: Channel
) -> None:
    client = awa.Client(database_url)
    send, receive = channel
    calls: list[Any] = []
    parking_handler(client, "charge", send, calls=calls)
    async with client, awa.Runtime(client, make_config(), **no_maintenance()):
        job = await client.insert("charge", {"amount": 5})
        with anyio.fail_after(10):
            callback = await receive.receive()
        parked = await wait_job(client, job.id, WAITING)
        assert callback.job_id == job.id and parked.attempt == 1
        row = await raw.fetchrow(
            "SELECT callback_id, callback_timeout_at FROM awa.jobs WHERE id = $1", job.id
        )
        assert row is not None
        assert str(row["callback_id"]) == callback.id
        assert row["callback_timeout_at"] == callback.timeout_at

        resolution = await Callbacks(client).complete(callback.id, callback.token, {"paid": 5})
        assert resolution.state == "completed" and resolution.applied

        done = await wait_job(client, job.id, DONE)
    assert done.state is awa.JobState.COMPLETED
    assert done.result == {"paid": 5}
    assert done.attempt == 1 and done.errors == []
    assert calls == [None]  # not resumed: the payload is the result
    stored = await raw.fetchrow("SELECT * FROM awa.callbacks WHERE id = $1", uuid.UUID(callback.id))
    assert stored is not None
    assert stored["state"] == "completed" and stored["resolved_at"] is not None
    assert bytes(stored["token_hash"]) != callback.token.encode()  # only a hash is kept
    assert callback.token not in repr(callback)


async def test_resume_mode_runs_the_handler_again_with_the_payload_via_ingress(
    database_url: str,
    channel: Channel,
) -> None:
    client = awa.Client(database_url)
    send, receive = channel
    calls: list[Any] = []
    parking_handler(client, "approve", send, resume=True, calls=calls)
    async with (
        client,
        awa.Runtime(client, make_config(), **no_maintenance()),
        ingress(client) as http,
    ):
        job = await client.insert("approve", {"doc": 7})
        with anyio.fail_after(10):
            callback = await receive.receive()
        await wait_job(client, job.id, WAITING)
        answer = await post(
            http, callback.id, callback.token, {"action": "complete", "payload": {"ok": 1}}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"callback_id": callback.id, "state": "completed"}
        assert callback.token not in answer.text
        done = await wait_job(client, job.id, DONE)
    assert done.state is awa.JobState.COMPLETED
    assert done.result == {"resumed_with": {"ok": 1}}
    assert done.attempt == 1  # the continuation is the same attempt
    assert len(calls) == 2 and calls[0] is None
    assert calls[1].id == callback.id and calls[1].payload == {"ok": 1}
    assert done.metadata["awa.callback"]["id"] == callback.id


async def test_resolution_before_the_handler_returns_is_applied_at_park(
    database_url: str,
    channel: Channel,
) -> None:
    """The external system may answer before the handler returns WaitForCallback: the
    resolution waits on the callback row and the park applies it at once."""
    client = awa.Client(database_url)
    resolved = anyio.Event()
    send, receive = channel

    @client.handler("fast")
    async def fast(ctx: awa.JobContext) -> Any:
        if ctx.callback is not None:
            return {"resumed": ctx.callback.payload}
        callback = await ctx.register_callback(timeout=60, resume=ctx.args["resume"])
        await send.send(callback)
        await resolved.wait()
        return WaitForCallback(callback)

    async with client, awa.Runtime(client, make_config(), **no_maintenance()):
        plain = await client.insert("fast", {"resume": False})
        resumed = await client.insert("fast", {"resume": True})
        with anyio.fail_after(10):
            handed_out = [await receive.receive(), await receive.receive()]
        for callback in handed_out:
            result = await Callbacks(client).complete(callback.id, callback.token, {"n": 1})
            assert not result.applied  # still running: recorded, applied by the park
            assert (await client.get_job(callback.job_id)).state is awa.JobState.RUNNING
        resolved.set()
        plain_done = await wait_job(client, plain.id, DONE)
        resumed_done = await wait_job(client, resumed.id, DONE)
    assert plain_done.state is awa.JobState.COMPLETED and plain_done.result == {"n": 1}
    assert resumed_done.state is awa.JobState.COMPLETED
    assert resumed_done.result == {"resumed": {"n": 1}}
    assert plain_done.attempt == resumed_done.attempt == 1


async def test_fail_fails_the_job_and_retry_runs_it_again(
    database_url: str, raw: asyncpg.Connection, channel: Channel
) -> None:
    client = awa.Client(database_url)
    send, receive = channel
    attempts: dict[int, int] = {}

    @client.handler("ext")
    async def ext(ctx: awa.JobContext) -> Any:
        attempts[ctx.job.id] = attempts.get(ctx.job.id, 0) + 1
        if ctx.job.attempt > 1:
            return "second attempt done"
        callback = await ctx.register_callback(timeout=60)
        await send.send(callback)
        return WaitForCallback(callback)

    callbacks = Callbacks(client)
    async with client, awa.Runtime(client, make_config(), **no_maintenance()):
        doomed = await client.insert("ext", {}, max_attempts=5)
        with anyio.fail_after(10):
            first = await receive.receive()
        await wait_job(client, doomed.id, WAITING)
        await callbacks.fail(first.id, first.token, "card declined", payload={"code": 51})
        failed = await wait_job(client, doomed.id, DONE)

        again = await client.insert("ext", {}, max_attempts=5)
        with anyio.fail_after(10):
            second = await receive.receive()
        await wait_job(client, again.id, WAITING)
        await callbacks.retry(second.id, second.token, delay=0, error="upstream busy")
        retried = await wait_job(client, again.id, DONE)

    assert failed.state is awa.JobState.FAILED and failed.attempt == 1
    assert attempts[doomed.id] == 1  # fail is final, whatever attempts are left
    [record] = failed.errors
    assert record["kind"] == "callback" and record["action"] == "fail"
    assert record["message"] == "card declined" and record["payload"] == {"code": 51}
    assert record["callback_id"] == first.id
    events = await raw.fetch("SELECT kind, payload FROM awa.events WHERE job_id = $1", doomed.id)
    assert [e["kind"] for e in events] == ["job.failed"]  # written with the failure (ADR 006)

    assert retried.state is awa.JobState.COMPLETED and retried.attempt == 2
    assert retried.result == "second attempt done" and attempts[again.id] == 2
    [record] = retried.errors
    assert record["action"] == "retry" and record["message"] == "upstream busy"
    assert "payload" not in record


async def test_retry_with_no_attempt_left_fails(database_url: str, channel: Channel) -> None:
    client = awa.Client(database_url)
    send, receive = channel
    parking_handler(client, "once", send)
    async with client, awa.Runtime(client, make_config(), **no_maintenance()):
        job = await client.insert("once", {}, max_attempts=1)
        with anyio.fail_after(10):
            callback = await receive.receive()
        await wait_job(client, job.id, WAITING)
        await Callbacks(client).retry(callback.id, callback.token)
        done = await wait_job(client, job.id, DONE)
    assert done.state is awa.JobState.FAILED
    assert [e["action"] for e in done.errors] == ["retry"]


async def test_timeout_rescue_retries_then_fails_and_late_answers_are_expired(
    database_url: str,
    channel: Channel,
) -> None:
    """Never answered: maintenance's rescue_expired_callbacks retries the job (attempt 1),
    then fails it (attempt 2 of 2); a late answer to the first callback gets 410."""
    client = awa.Client(database_url)
    send, receive = channel
    parking_handler(client, "ghosted", send, timeout=0.3)
    maintenance = MaintenanceConfig(
        startup_jitter=0,
        intervals={"rescue_expired_callbacks": 0.1, "promote_scheduled": 0.1},
    )
    async with (
        client,
        awa.Runtime(client, make_config(), maintenance=maintenance),
        ingress(client) as http,
    ):
        job = await client.insert("ghosted", {}, max_attempts=2)
        with anyio.fail_after(10):
            first = await receive.receive()
            second = await receive.receive()
        assert first.id != second.id
        done = await wait_job(client, job.id, DONE)
        late = await post(http, first.id, first.token, {"action": "complete"})
        assert late.status_code == 410, late.text
        assert late.json()["error"] == "expired"
        with pytest.raises(CallbackExpired):
            await Callbacks(client).complete(second.id, second.token)
    assert done.state is awa.JobState.FAILED and done.attempt == 2
    assert [e["kind"] for e in done.errors] == ["rescued", "rescued"]
    assert all(e["message"] == "callback timed out" for e in done.errors)


async def test_heartbeat_extends_the_timeout_past_the_rescue(
    database_url: str, raw: asyncpg.Connection, channel: Channel
) -> None:
    client = awa.Client(database_url)
    send, receive = channel
    parking_handler(client, "slow", send, timeout=30)
    async with client, awa.Runtime(client, make_config(), **no_maintenance()):
        kept = await client.insert("slow", {})
        dropped = await client.insert("slow", {})
        with anyio.fail_after(10):
            got = {c.job_id: c for c in [await receive.receive(), await receive.receive()]}
        await wait_job(client, kept.id, WAITING)
        await wait_job(client, dropped.id, WAITING)
        callback = got[kept.id]
        new_timeout = await Callbacks(client).heartbeat(
            callback.id, callback.token, timedelta(hours=1)
        )
        assert new_timeout > callback.timeout_at + timedelta(minutes=59)
        stored = await raw.fetchval(
            "SELECT callback_timeout_at FROM awa.jobs WHERE id = $1", kept.id
        )
        assert stored == new_timeout

        # One rescue pass "two minutes later": only the job without a heartbeat times out.
        later = awa.FakeClock(callback.timeout_at + timedelta(minutes=2))
        store = client.store
        result = await RescueExpiredCallbacks().run_once(
            BranchContext(store=store, clock=later, config=MaintenanceConfig())
        )
        assert result.rows == {"retried": 1, "failed": 0}
        assert (await client.get_job(kept.id)).state is awa.JobState.WAITING_EXTERNAL
        assert (await client.get_job(dropped.id)).state is not awa.JobState.WAITING_EXTERNAL

        await Callbacks(client).complete(callback.id, callback.token, "finally")
        done = await wait_job(client, kept.id, DONE)
    assert done.result == "finally"


async def test_many_jobs_parked_and_resolved_concurrently_each_complete_once(
    database_url: str,
    channel: Channel,
) -> None:
    """Resolutions race the batched park flush (some arrive before it, some after): every
    job completes exactly once with its own payload."""
    client = awa.Client(database_url)
    send, receive = channel
    runs: dict[int, int] = {}

    @client.handler("many")
    async def many(ctx: awa.JobContext) -> Any:
        runs[ctx.job.id] = runs.get(ctx.job.id, 0) + 1
        if ctx.callback is not None:
            return ctx.callback.payload
        callback = await ctx.register_callback(timeout=60, resume=ctx.job.id % 2 == 0)
        await send.send(callback)
        await anyio.sleep(0.001 * (ctx.job.id % 5))
        return WaitForCallback(callback)

    callbacks = Callbacks(client)
    count = 60
    async with client, awa.Runtime(client, make_config(queues={"default": 20}), **no_maintenance()):
        ids = await client.insert_many([client.params("many", {}) for _ in range(count)])
        async with anyio.create_task_group() as tg:
            for _ in range(count):
                with anyio.fail_after(15):
                    callback = await receive.receive()
                tg.start_soon(callbacks.complete, callback.id, callback.token, callback.job_id)
        with anyio.fail_after(20):
            while True:
                jobs = [await client.get_job(i) for i in ids]
                if all(DONE(j) for j in jobs):
                    break
                await anyio.sleep(0.05)
    assert all(j.state is awa.JobState.COMPLETED for j in jobs)
    assert all(j.result == j.id for j in jobs)
    assert all(runs[i] == (2 if i % 2 == 0 else 1) for i in ids)


async def test_ingress_mounted_under_a_prefix_of_a_host_app(
    database_url: str, channel: Channel
) -> None:
    """Mounted the way Starlette's ``Mount`` does it (``path`` kept whole, ``root_path``
    extended by the prefix), the ingress resolves ``<prefix>/<id>``."""
    client = awa.Client(database_url)
    send, receive = channel
    parking_handler(client, "mounted", send)
    inner = callback_app(Callbacks(client))
    prefix = "/hooks/awa"

    async def host(scope: Scope, receive_: Receive, send_: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive_, send_)
        elif scope["path"].startswith(prefix + "/"):
            mounted = {**scope, "root_path": scope.get("root_path", "") + prefix}
            await inner(mounted, receive_, send_)
        else:
            await send_text(send_, 404, b"host app")

    async with (
        client,
        awa.Runtime(client, make_config(), **no_maintenance()),
        anyio.create_task_group() as tg,
    ):
        port = await tg.start(serve, host, "127.0.0.1", 0)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            job = await client.insert("mounted", {})
            with anyio.fail_after(10):
                cb = await receive.receive()
            await wait_job(client, job.id, WAITING)
            headers = {"authorization": f"Bearer {cb.token}"}
            body = {"action": "complete", "payload": "via mount"}
            outside = await http.post(f"/{cb.id}", json=body, headers=headers)
            assert outside.status_code == 404 and outside.text == "host app"
            answer = await http.post(f"{prefix}/{cb.id}", json=body, headers=headers)
            assert answer.status_code == 200, answer.text
            done = await wait_job(client, job.id, DONE)
        tg.cancel_scope.cancel()
    assert done.result == "via mount"


# ------------------------------------------------------------------------ refusals


async def test_refusals_over_http_have_the_right_status_and_change_nothing(
    database_url: str, raw: asyncpg.Connection, channel: Channel
) -> None:
    client = awa.Client(database_url)
    send, receive = channel
    parking_handler(client, "guarded", send)
    async with (
        client,
        awa.Runtime(client, make_config(), **no_maintenance()),
        ingress(client, max_body=2048) as http,
    ):
        job = await client.insert("guarded", {})
        with anyio.fail_after(10):
            cb = await receive.receive()
        await wait_job(client, job.id, WAITING)
        before = await rows(raw, job.id, cb.id)
        complete = {"action": "complete", "payload": {"ok": True}}

        cases: list[tuple[str, Callable[[], Awaitable[httpx.Response]], int, str]] = [
            (
                "wrong token",
                lambda: post(http, cb.id, "not-the-token", complete),
                404,  # as an unknown id: existence is not disclosed
                "not_found",
            ),
            ("no token", lambda: post(http, cb.id, None, complete), 401, "unauthorized"),
            (
                "not bearer",
                lambda: post(http, cb.id, None, complete, headers={"authorization": cb.token}),
                401,
                "unauthorized",
            ),
            (
                "unknown id",
                lambda: post(http, str(uuid.uuid4()), cb.token, complete),
                404,
                "not_found",
            ),
            (
                "oversized",
                lambda: post(http, cb.id, cb.token, {"action": "complete", "payload": "x" * 4096}),
                413,
                "too_large",
            ),
            (
                "malformed JSON",
                lambda: post(http, cb.id, cb.token, None, raw=b'{"action": "complete",'),
                400,
                "malformed_json",
            ),
            (
                "unknown action",
                lambda: post(http, cb.id, cb.token, {"action": "win"}),
                400,
                "invalid",
            ),
            (
                "unexpected field",
                lambda: post(http, cb.id, cb.token, {"action": "complete", "token": cb.token}),
                400,
                "invalid",
            ),
            (
                "NaN payload",
                lambda: post(
                    http, cb.id, cb.token, None, raw=b'{"action":"complete","payload":NaN}'
                ),
                400,
                "invalid",
            ),
            (
                "bad heartbeat",
                lambda: post(http, cb.id, cb.token, {"action": "heartbeat", "extend_by": -5}),
                400,
                "invalid",
            ),
        ]
        for name, request, status, code in cases:
            answer = await request()
            assert answer.status_code == status, (name, answer.text)
            assert answer.json()["error"] == code, name
            assert cb.token not in answer.text, name
            assert await rows(raw, job.id, cb.id) == before, name
        no_token = await post(http, cb.id, None, complete)
        assert no_token.headers["www-authenticate"].startswith("Bearer")
        wrong_method = await http.get(f"/{cb.id}")
        assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
        assert (await http.post("/jobs", content=b"{}")).status_code == 404

        ok = await post(http, cb.id, cb.token, complete)
        assert ok.status_code == 200, ok.text
        done = await wait_job(client, job.id, DONE)
        after = await rows(raw, job.id, cb.id)
        again = await post(http, cb.id, cb.token, {"action": "fail", "error": "late"})
        assert again.status_code == 409 and again.json()["error"] == "already_resolved"
        wrong_again = await post(http, cb.id, "guess", {"action": "fail"})
        assert wrong_again.status_code == 404  # the token is checked before the state
        assert await rows(raw, job.id, cb.id) == after
    assert done.state is awa.JobState.COMPLETED and done.result == {"ok": True}


async def test_api_refusals_raise_typed_errors_and_change_nothing(
    database_url: str, raw: asyncpg.Connection, channel: Channel
) -> None:
    client = awa.Client(database_url)
    send, receive = channel
    parking_handler(client, "typed", send, timeout=0.5)
    callbacks = Callbacks(client)
    async with client, awa.Runtime(client, make_config(), **no_maintenance()):
        job = await client.insert("typed", {})
        with anyio.fail_after(10):
            cb = await receive.receive()
        await wait_job(client, job.id, WAITING)
        before = await rows(raw, job.id, cb.id)
        with pytest.raises(CallbackTokenInvalid):
            await callbacks.complete(cb.id, cb.token + "x")
        with pytest.raises(CallbackNotFound):
            await callbacks.complete(uuid.uuid4(), cb.token)
        with pytest.raises(CallbackNotFound):
            await callbacks.complete("not-a-uuid", cb.token)
        with pytest.raises(awa.ValidationError):
            await callbacks.complete(cb.id, cb.token, {"bad": float("nan")})
        assert await rows(raw, job.id, cb.id) == before
        # Past its timeout (no maintenance runs here to rescue it): expired, still parked.
        left = await raw.fetchval("SELECT extract(epoch FROM $1 - now())::float8", cb.timeout_at)
        await anyio.sleep(max(0.0, left) + 0.05)
        with pytest.raises(CallbackExpired):
            await callbacks.heartbeat(cb.id, cb.token, 60)
        with pytest.raises(CallbackExpired):
            await callbacks.complete(cb.id, cb.token)
        assert await rows(raw, job.id, cb.id) == before


async def test_cancelled_parked_job_refuses_its_callback(
    database_url: str, channel: Channel
) -> None:
    client = awa.Client(database_url)
    send, receive = channel
    parking_handler(client, "cancel_me", send)
    async with client, awa.Runtime(client, make_config(), **no_maintenance()):
        job = await client.insert("cancel_me", {})
        with anyio.fail_after(10):
            cb = await receive.receive()
        await wait_job(client, job.id, WAITING)
        cancelled = await client.cancel_job(job.id, "not needed")
        assert cancelled.state is awa.JobState.CANCELLED
        with pytest.raises(CallbackExpired):
            await Callbacks(client).complete(cb.id, cb.token)


async def test_signed_ingress_requires_a_valid_fresh_signature(
    database_url: str, raw: asyncpg.Connection, channel: Channel
) -> None:
    client = awa.Client(database_url)
    send, receive = channel
    parking_handler(client, "signed", send)
    secret = "s3cret"
    async with (
        client,
        awa.Runtime(client, make_config(), **no_maintenance()),
        ingress(client, secret=["rotated-in", secret]) as http,
    ):
        job = await client.insert("signed", {})
        with anyio.fail_after(10):
            cb = await receive.receive()
        await wait_job(client, job.id, WAITING)
        before = await rows(raw, job.id, cb.id)
        body = json.dumps({"action": "complete", "payload": 42}).encode()
        now = int(client.clock.now().timestamp())
        refused = {
            "unsigned": {},
            "wrong secret": {SIGNATURE_HEADER: sign_callback("other", cb.id, body, now)},
            "stale": {SIGNATURE_HEADER: sign_callback(secret, cb.id, body, now - 3600)},
            "other body": {SIGNATURE_HEADER: sign_callback(secret, cb.id, body + b" ", now)},
            "other id": {SIGNATURE_HEADER: sign_callback(secret, uuid.uuid4(), body, now)},
            "body only (v1)": {SIGNATURE_HEADER: sign_body(secret, body, now)},
            "garbage": {SIGNATURE_HEADER: "v1=deadbeef"},
        }
        for name, headers in refused.items():
            answer = await post(http, cb.id, cb.token, None, raw=body, headers=headers)
            assert answer.status_code == 401, name
            assert answer.json()["error"] == "invalid_signature", name
            assert await rows(raw, job.id, cb.id) == before, name
        good = {SIGNATURE_HEADER: sign_callback(secret, cb.id, body, now)}
        answer = await post(http, cb.id, cb.token, None, raw=body, headers=good)
        assert answer.status_code == 200, answer.text
        done = await wait_job(client, job.id, DONE)
    assert done.result == 42


# --------------------------------------------------------------------- handler side


async def test_register_twice_and_foreign_callbacks_are_handler_errors(
    database_url: str,
) -> None:
    client = awa.Client(database_url)
    seen: dict[str, Any] = {}
    first: list[Callback] = []

    @client.handler("twice")
    async def twice(ctx: awa.JobContext) -> Any:
        await ctx.register_callback(timeout=60)
        with pytest.raises(InvalidTransition):
            await ctx.register_callback(timeout=60)
        seen["twice"] = True
        return "ok"

    @client.handler("foreign")
    async def foreign(ctx: awa.JobContext) -> Any:
        if not first:
            first.append(await ctx.register_callback(timeout=60))
            raise RuntimeError("first attempt fails after registering")
        return WaitForCallback(first[0])  # registered by the previous attempt

    config = make_config(backoff=awa.Backoff(base=0.01, cap=0.01, jitter=0.0))
    async with client, awa.Runtime(client, config):
        a = await client.insert("twice", {})
        b = await client.insert("foreign", {}, max_attempts=2)
        done_a = await wait_job(client, a.id, DONE)
        done_b = await wait_job(client, b.id, DONE)
    assert seen == {"twice": True} and done_a.result == "ok"
    assert done_b.state is awa.JobState.FAILED
    assert "did not register" in done_b.errors[-1]["message"]
    with pytest.raises(awa.ConfigError):
        await awa.JobContext(done_a).register_callback(timeout=1)
    with pytest.raises(awa.ValidationError):
        WaitForCallback("not a callback")  # type: ignore[arg-type]


async def test_park_is_guarded_by_lease_and_callback_and_honours_cancel_requests(
    database_url: str, raw: asyncpg.Connection
) -> None:
    """The park flush, driven directly: a stale lease or a callback the attempt did not
    register parks nothing; an attempt an operator asked to cancel ends cancelled."""
    client = awa.Client(database_url)
    async with client:
        store = client.store
        for i in range(3):
            await client.insert("k", {"i": i})
        jobs = await client.store.jobs.claim_batch("default", ["k"], 3, "tester")
        assert len(jobs) == 3
        ids = {}
        for job in jobs:
            ids[job.id] = uuid.uuid4()
            timeout_at = await store.callbacks.register_callback(
                job.id, job.run_lease, ids[job.id], b"hash", 60.0, False
            )
            assert timeout_at is not None
        stale, foreign, cancelled = jobs
        await raw.execute("UPDATE awa.jobs SET cancel_requested = true WHERE id = $1", cancelled.id)
        applied = await store.callbacks.park_jobs(
            [
                ParkedAttempt(stale.id, stale.run_lease + 1, str(ids[stale.id])),
                ParkedAttempt(foreign.id, foreign.run_lease, str(ids[stale.id])),
                ParkedAttempt(cancelled.id, cancelled.run_lease, str(ids[cancelled.id])),
            ]
        )
        assert applied == {cancelled.id}
        assert (await client.get_job(stale.id)).state is awa.JobState.RUNNING
        assert (await client.get_job(foreign.id)).state is awa.JobState.RUNNING
        assert (await client.get_job(cancelled.id)).state is awa.JobState.CANCELLED
        assert (
            await store.callbacks.register_callback(stale.id, 999, uuid.uuid4(), b"h", 1.0, False)
            is None
        )


async def test_prune_forgets_only_old_callbacks_no_job_waits_on(
    database_url: str, raw: asyncpg.Connection, channel: Channel
) -> None:
    client = awa.Client(database_url)
    send, receive = channel
    parking_handler(client, "prunable", send)
    async with client, awa.Runtime(client, make_config(), **no_maintenance()):
        resolved = await client.insert("prunable", {})
        waiting = await client.insert("prunable", {})
        with anyio.fail_after(10):
            got = {c.job_id: c for c in [await receive.receive(), await receive.receive()]}
        await wait_job(client, resolved.id, WAITING)
        await wait_job(client, waiting.id, WAITING)
        done = got[resolved.id]
        await Callbacks(client).complete(done.id, done.token)
        await wait_job(client, resolved.id, DONE)
        store = client.store
        assert await store.callbacks.prune_callbacks(3600, 100) == 0  # nothing is an hour old
        later = done.timeout_at + timedelta(days=1)
        assert await store.callbacks.prune_callbacks(3600, 100, later) == 1  # the resolved one only
        left = await raw.fetch("SELECT id FROM awa.callbacks")
        assert [str(r["id"]) for r in left] == [got[waiting.id].id]
        with pytest.raises(CallbackNotFound):  # forgotten: a late duplicate is now unknown
            await Callbacks(client).complete(done.id, done.token)


def test_signatures_round_trip_and_reject_tampering() -> None:
    body = b'{"a":1}'
    header = sign_body("k", body, 1_000)
    assert verify_signature("k", body, header, 1_000)
    assert verify_signature(["old", "k"], body, header, 1_200)
    assert not verify_signature("k", body, header, 1_000 + 301)
    assert not verify_signature("k", body + b"x", header, 1_000)
    assert not verify_signature("x", body, header, 1_000)
    assert not verify_signature("k", body, None, 1_000)
    assert not verify_signature("k", body, "t=abc,v1=00", 1_000)
    both = header + "," + sign_body("new", body, 1_000).split(",")[1]
    assert verify_signature("new", body, both, 1_000)
    with pytest.raises(awa.ValidationError):
        sign_body("", body, 1)
