"""HTTP workers against a real HTTP target on loopback (an ASGI app served by uvicorn), and
in async mode the callback ingress served the same way.

The target records every request it receives (verified signature, job id, attempt) and
answers as each test tells it to. The chaos test starts with no target at all (connections
refused), lets every job fail and back off, then brings the target up: every job must
complete, and the target must see exactly one request per job (none lost, none run after
its completion).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import secrets
import socket
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import anyio
import asyncpg
import httpx
import pytest

import awa
from awa.callbacks import SIGNATURE_HEADER, Callbacks, verify_signature
from awa.config import MaintenanceConfig
from awa.errors import CallbackExpired, HttpWorkerError, ValidationError
from awa.http_redaction import redact_url
from awa.http_worker import http_worker, retry_after_seconds
from awa.web import serve
from awa.web.asgi import Receive, Scope, Send, lifespan
from awa.web.ingress import callback_app

SECRET = "target-secret"


@dataclass
class Request:
    headers: dict[str, str]
    body: dict[str, Any]
    signed: bool


Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Target:
    """A recording HTTP target. ``answer`` decides each response (default 200 echo)."""

    answer: Callable[[Request], Awaitable[Answer]] | None = None
    requests: list[Request] = field(default_factory=list)
    check_time: bool = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        now = awa.SystemClock().now().timestamp()
        tolerance = 300.0 if self.check_time else float("inf")
        signed = verify_signature(
            SECRET, raw, headers.get(SIGNATURE_HEADER.lower()), now, tolerance
        )
        request = Request(headers, json.loads(raw), signed)
        self.requests.append(request)
        if self.answer is not None:
            status, extra, body = await self.answer(request)
        else:
            status, extra, body = (
                200,
                {},
                json.dumps({"echo": request.body["job"]["args"]}).encode(),
            )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    *[(k.encode(), v.encode()) for k, v in extra.items()],
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def served(app: Any, port: int = 0) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on loopback; yields its base URL."""
    async with anyio.create_task_group() as tg:
        bound = await tg.start(serve, app, "127.0.0.1", port)
        yield f"http://127.0.0.1:{bound}"
        tg.cancel_scope.cancel()


def make_config(**overrides: Any) -> awa.RuntimeConfig:
    options: dict[str, Any] = {
        "queues": {"default": 8},
        "heartbeat_interval": 0.1,
        "poll_interval": 0.2,
        "shutdown_grace": 5.0,
    }
    options.update(overrides)
    return awa.RuntimeConfig(**options)


async def wait_job(
    client: awa.Client, job_id: int, predicate: Callable[[awa.Job], bool], timeout: float = 15.0
) -> awa.Job:
    with anyio.fail_after(timeout):
        while True:
            job = await client.get_job(job_id)
            if predicate(job):
                return job
            await anyio.sleep(0.02)


def settled(job: awa.Job) -> bool:
    return job.state in (
        awa.JobState.COMPLETED,
        awa.JobState.FAILED,
        awa.JobState.CANCELLED,
        awa.JobState.RETRYABLE,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --------------------------------------------------------------------------- sync


async def test_sync_mode_completes_with_the_json_response(database_url: str) -> None:
    client = awa.Client(database_url)
    target = Target()
    async with served(target) as base:
        binding = http_worker(client, "remote.echo", f"{base}/echo", secret=SECRET, timeout=5)
        async with client, awa.Runtime(client, make_config(), run_maintenance=False):
            job = await client.insert("remote.echo", {"n": 3})
            done = await wait_job(client, job.id, settled)
    assert done.state is awa.JobState.COMPLETED
    assert done.result == {"echo": {"n": 3}}
    [request] = target.requests
    assert request.signed
    assert request.body == {
        "job": {
            "id": job.id,
            "kind": "remote.echo",
            "queue": "default",
            "args": {"n": 3},
            "attempt": 1,
            "max_attempts": 25,
        }
    }
    assert request.headers["awa-job-id"] == str(job.id)
    assert request.headers["awa-job-attempt"] == "1"
    assert SECRET not in repr(binding)


async def test_maintenance_only_runtime_never_dispatches_http_workers(database_url: str) -> None:
    """The maintenance role promotes the job bound to an HTTP worker but never calls the
    target; a worker runtime then does (the binding was live all along)."""
    client = awa.Client(database_url)
    target = Target()
    maintenance = MaintenanceConfig(
        startup_jitter=0, election_interval=0.2, intervals={"promote_scheduled": 0.1}
    )
    async with served(target) as base:
        http_worker(client, "remote.echo", f"{base}/echo", secret=SECRET, timeout=5)
        async with client:
            job = await client.insert("remote.echo", {"n": 1}, delay=0.2)
            async with awa.Runtime(
                client, make_config(), role="maintenance", maintenance=maintenance
            ) as runtime:
                assert runtime.dispatchers == []
                promoted = await wait_job(
                    client, job.id, lambda j: j.state is awa.JobState.AVAILABLE
                )
                await anyio.sleep(0.5)  # several promote intervals: still no call
                assert target.requests == []
            assert promoted.attempt == 0
            assert (await client.get_job(job.id)).state is awa.JobState.AVAILABLE
            async with awa.Runtime(client, make_config(), run_maintenance=False):
                done = await wait_job(client, job.id, settled)
    assert done.state is awa.JobState.COMPLETED
    assert len(target.requests) == 1


async def test_sync_mode_non_2xx_and_timeouts_follow_retry_rules(database_url: str) -> None:
    clock = awa.FakeClock()
    client = awa.Client(database_url, clock=clock)

    async def answer(request: Request) -> Answer:
        kind = request.body["job"]["kind"]
        if kind == "remote.down":
            return 500, {}, b'{"error": "database on fire"}'
        if kind == "remote.busy":
            return 429, {"retry-after": "7"}, b""
        if kind == "remote.gone":
            return 404, {}, b"no such function"
        await anyio.sleep(1.5)  # remote.slow: longer than the binding's timeout
        return 200, {}, b"{}"

    target = Target(answer=answer, check_time=False)
    async with served(target) as base:
        for kind in ("remote.down", "remote.busy", "remote.gone", "remote.slow"):
            http_worker(client, kind, f"{base}/{kind}", secret=SECRET, timeout=0.5)
        config = make_config(backoff=awa.Backoff(base=30.0, jitter=0.0))
        async with client, awa.Runtime(client, config, run_maintenance=False):
            down = await client.insert("remote.down", {}, max_attempts=3)
            busy = await client.insert("remote.busy", {}, max_attempts=3)
            gone = await client.insert("remote.gone", {}, max_attempts=1)
            slow = await client.insert("remote.slow", {}, max_attempts=3)
            jobs = {j.kind: await wait_job(client, j.id, settled) for j in (down, busy, gone, slow)}
    assert all(r.signed for r in target.requests)
    down_job = jobs["remote.down"]
    assert down_job.state is awa.JobState.RETRYABLE
    assert down_job.run_at == clock.now() + timedelta(seconds=30)  # the runtime's backoff
    assert "HTTP 500" in down_job.errors[0]["message"]
    assert "database on fire" in down_job.errors[0]["message"]
    busy_job = jobs["remote.busy"]
    assert busy_job.state is awa.JobState.RETRYABLE
    assert busy_job.run_at == clock.now() + timedelta(seconds=7)  # Retry-After, not backoff
    assert busy_job.errors[0]["kind"] == "retry_after"
    gone_job = jobs["remote.gone"]
    assert gone_job.state is awa.JobState.FAILED  # no attempt left: failed
    assert "HTTP 404" in gone_job.errors[0]["message"]
    slow_job = jobs["remote.slow"]
    assert slow_job.state is awa.JobState.RETRYABLE
    assert "no answer within 0.5s" in slow_job.errors[0]["message"]


# -------------------------------------------------------------------------- async


@pytest.mark.parametrize("order", ["answer_then_callback", "callback_then_answer"])
async def test_async_mode_parks_until_the_remote_calls_back(database_url: str, order: str) -> None:
    """The remote answers 202 and resolves the callback through the ingress with its token,
    either after answering or (racing the park) before."""
    client = awa.Client(database_url)
    background: list[Request] = []
    resolved = anyio.Event()

    async def call_back(request: Request) -> None:
        callback = request.body["callback"]
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                callback["url"],
                json={"action": "complete", "payload": {"resized": request.body["job"]["args"]}},
                headers={"authorization": f"Bearer {callback['token']}"},
            )
        assert answer.status_code == 200, answer.text
        resolved.set()

    async def answer(request: Request) -> Answer:
        if order == "callback_then_answer":
            await call_back(request)
        else:
            background.append(request)
        return 202, {}, b'{"accepted": true}'

    target = Target(answer=answer)
    async with (
        client,
        served(callback_app(Callbacks(client))) as ingress_url,
        served(target) as target_url,
    ):
        http_worker(
            client,
            "remote.resize",
            f"{target_url}/resize",
            mode="async",
            secret=SECRET,
            callback_url=ingress_url,
            callback_timeout=60,
        )
        async with awa.Runtime(client, make_config(), run_maintenance=False):
            job = await client.insert("remote.resize", {"w": 640})
            if order == "answer_then_callback":
                parked = await wait_job(
                    client, job.id, lambda j: j.state is awa.JobState.WAITING_EXTERNAL
                )
                assert parked.attempt == 1
                await call_back(background[0])
            done = await wait_job(client, job.id, settled)
    assert resolved.is_set()
    assert done.state is awa.JobState.COMPLETED
    assert done.result == {"resized": {"w": 640}}
    [request] = target.requests
    assert request.signed
    callback = request.body["callback"]
    assert callback["url"] == f"{ingress_url}/{callback['id']}"
    assert set(callback) == {"id", "token", "url", "timeout_at"}


async def test_async_mode_non_2xx_retries_with_a_fresh_callback(database_url: str) -> None:
    client = awa.Client(database_url)
    answers = iter([503, 202])

    async def answer(request: Request) -> Answer:
        return next(answers), {}, b""

    target = Target(answer=answer)
    async with (
        client,
        served(callback_app(Callbacks(client))) as ingress_url,
        served(target) as target_url,
    ):
        http_worker(
            client,
            "remote.flaky",
            f"{target_url}/f",
            mode="async",
            callback_url=ingress_url,
        )
        # A slow heartbeat: this test is about the callback, not heartbeat timing.
        config = make_config(
            heartbeat_interval=5.0, backoff=awa.Backoff(base=0.01, cap=0.01, jitter=0.0)
        )
        async with awa.Runtime(client, config, maintenance=MaintenanceConfig(startup_jitter=0)):
            job = await client.insert("remote.flaky", {})
            await wait_job(client, job.id, lambda j: j.state is awa.JobState.WAITING_EXTERNAL)
            first, second = (r.body["callback"] for r in target.requests)
            assert first["id"] != second["id"]
            with pytest.raises(CallbackExpired):  # the failed attempt's callback is dead
                await Callbacks(client).complete(first["id"], first["token"], "stale")
            await Callbacks(client).complete(second["id"], second["token"], "fresh")
            done = await wait_job(client, job.id, settled)
    assert done.state is awa.JobState.COMPLETED and done.result == "fresh"
    assert done.attempt == 2 and "HTTP 503" in done.errors[0]["message"]


# -------------------------------------------------------------------------- chaos


async def test_chaos_target_refuses_connections_then_recovers(database_url: str) -> None:
    """No target listening at first: every attempt's connection is refused and each job
    backs off and retries. Then the target comes up: all jobs complete, each delivered to
    the target exactly once (none lost, none run again after its completion)."""
    client = awa.Client(database_url)
    target = Target()
    port = free_port()
    http_worker(client, "remote.chaos", f"http://127.0.0.1:{port}/work", secret=SECRET, timeout=2)
    count = 20
    config = make_config(
        queues={"default": 10},
        heartbeat_interval=5.0,  # the outage is the HTTP target's, not the database's
        backoff=awa.Backoff(base=0.05, factor=2.0, cap=0.3, jitter=0.2),
    )
    maintenance = MaintenanceConfig(startup_jitter=0, intervals={"promote_scheduled": 0.05})
    async with client, awa.Runtime(client, config, maintenance=maintenance):
        ids = await client.insert_many(
            [client.params("remote.chaos", {"i": i}, max_attempts=100) for i in range(count)]
        )
        with anyio.fail_after(30):  # the outage: every job has failed at least twice
            while True:
                jobs = [await client.get_job(i) for i in ids]
                if all(len(j.errors) >= 2 for j in jobs):
                    break
                await anyio.sleep(0.05)
        assert all(j.state is not awa.JobState.COMPLETED for j in jobs)
        assert target.requests == []
        async with served(target, port):
            with anyio.fail_after(30):
                while True:
                    jobs = [await client.get_job(i) for i in ids]
                    if all(j.state is awa.JobState.COMPLETED for j in jobs):
                        break
                    await anyio.sleep(0.05)
            completed_requests = len(target.requests)
            # Keep serving a while: a job run again after completing would show up here.
            await anyio.sleep(0.5)
    assert {j.result["echo"]["i"] for j in jobs} == set(range(count))
    assert all(j.state is awa.JobState.COMPLETED for j in jobs)
    assert all(e["type"] == "HttpWorkerError" for j in jobs for e in j.errors)
    assert all("ConnectError" in e["message"] for j in jobs for e in j.errors)
    assert all(j.attempt == len(j.errors) + 1 for j in jobs)
    assert len(target.requests) == completed_requests == count
    assert sorted(r.body["job"]["id"] for r in target.requests) == sorted(ids)
    assert all(r.signed for r in target.requests)


# ---------------------------------------------------------------------- validation


def test_binding_is_validated_up_front() -> None:
    client = awa.Client("postgresql://localhost/unused")
    with pytest.raises(ValidationError, match="mode"):
        http_worker(client, "k1", "http://x/", mode="batch")
    with pytest.raises(ValidationError, match="url"):
        http_worker(client, "k2", "ftp://x/")
    with pytest.raises(ValidationError, match="callback_url"):
        http_worker(client, "k3", "http://x/", mode="async")
    with pytest.raises(ValidationError, match="timeout"):
        http_worker(client, "k4", "http://x/", timeout=0)
    with pytest.raises(ValidationError, match="secret"):
        http_worker(client, "k5", "http://x/", secret="")
    http_worker(client, "k6", "http://x/")
    with pytest.raises(ValidationError, match="already registered"):
        http_worker(client, "k6", "http://x/")
    assert client.registry.kinds() == ["k6"]


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = awa.FakeClock().now()
    assert retry_after_seconds("120", now) == 120.0
    assert retry_after_seconds(None, now) is None
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds("999999999", now) == 86400.0
    date = "Tue, 01 Jan 2030 00:01:30 GMT"  # FakeClock starts at 2030-01-01T00:00:00Z
    assert retry_after_seconds(date, now) == 90.0
    assert retry_after_seconds("Mon, 31 Dec 2029 00:00:00 GMT", now) == 0.0


# ------------------------------------------------------------------ secrets in the URL

URL_PASSWORD = "urlpw-" + secrets.token_hex(8)
URL_TOKEN = "urltok-" + secrets.token_hex(8)
URL_KEY = "urlkey-" + secrets.token_hex(8)
URL_SIG = "urlsig-" + secrets.token_hex(8)
URL_SECRETS = (URL_PASSWORD, URL_TOKEN, URL_KEY, URL_SIG)


def secret_url(host: str, path: str) -> str:
    """A target URL carrying credentials in every place this test covers: the userinfo and
    three secret-looking query parameters (mixed case), next to a harmless one."""
    return (
        f"http://svc:{URL_PASSWORD}@{host}{path}"
        f"?Token={URL_TOKEN}&api_key={URL_KEY}&SIG={URL_SIG}&region=eu"
    )


async def leaky_target(scope: Scope, receive: Receive, send: Send) -> None:
    """A target whose error pages quote the request: its full URL (query included), its
    Authorization header (httpx sends the userinfo as Basic auth) and the decoded
    credentials. ``/slow`` never answers in time; ``/huge`` answers too much."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    while (await receive()).get("more_body"):
        pass
    headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
    authorization = headers.get("authorization", "")
    decoded = base64.b64decode(authorization.removeprefix("Basic ")).decode()
    query = scope["query_string"].decode()
    quoted = (
        f"cannot {scope['method']} http://{headers['host']}{scope['path']}?{query} "
        f"(authorization: {authorization}; user:password {decoded})"
    )
    status, extra, body = 500, [], quoted.encode()
    if scope["path"] == "/busy":
        status, extra = 429, [(b"retry-after", b"60")]
    elif scope["path"] == "/slow":
        await anyio.sleep(5)
    elif scope["path"] == "/huge":
        status, body = 200, quoted.encode() * 50
    await send({"type": "http.response.start", "status": status, "headers": extra})
    await send({"type": "http.response.body", "body": body})


async def database_text(raw: asyncpg.Connection) -> str:
    """Every row of every table in schema awa, as text: a secret stored anywhere shows."""
    tables = await raw.fetch(
        "SELECT c.oid::regclass::text AS name FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'awa' AND c.relkind IN ('r', 'p')"
    )
    rows = []
    for table in tables:
        rows += await raw.fetch(f"SELECT t::text AS row FROM {table['name']} t")
    return "\n".join(r["row"] for r in rows)


def assert_no_url_secret(text: str, where: str) -> None:
    for secret in URL_SECRETS:
        assert secret not in text, (where, secret)


@pytest.mark.parametrize("case", ["error-page", "retry-after", "timeout", "too-large", "refused"])
async def test_url_secrets_stay_out_of_errors_events_exceptions_and_logs(
    database_url: str, raw: asyncpg.Connection, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    """A real runtime runs an HTTP worker bound to a secret-bearing URL, against a real
    target whose error pages quote the request; each way an attempt can fail ends the job
    ``failed``. No secret may reach the exception, the stored error record, the
    ``job.failed`` event (or any other row of the schema), or a log line."""
    caplog.set_level(logging.DEBUG)
    client = awa.Client(database_url)
    raised: list[HttpWorkerError | awa.RetryAfter] = []
    async with served(leaky_target) as base:
        host = base.removeprefix("http://")
        path = {"retry-after": "/busy", "timeout": "/slow", "too-large": "/huge"}.get(case, "/x")
        if case == "refused":
            host = f"127.0.0.1:{free_port()}"
        binding = http_worker(
            client, "remote.inner", secret_url(host, path), timeout=1.0, max_response=256
        )

        @client.handler("remote.secret")
        async def handler(ctx: awa.JobContext) -> Any:
            try:
                return await binding(ctx)
            except (HttpWorkerError, awa.RetryAfter) as exc:
                raised.append(exc)
                raise

        async with client, awa.Runtime(client, make_config(), run_maintenance=False):
            job = await client.insert("remote.secret", {}, max_attempts=1)
            done = await wait_job(client, job.id, settled)
            events = await raw.fetch(
                "SELECT payload::text AS payload FROM awa.events"
                " WHERE kind = 'job.failed' AND job_id = $1",
                job.id,
            )
            stored = await database_text(raw)
    assert done.state is awa.JobState.FAILED
    [error] = done.errors
    [exc] = raised
    shown = redact_url(secret_url(host, path))
    assert "***" in shown and "region=eu" in shown
    if isinstance(exc, HttpWorkerError):
        assert exc.url == shown
        assert str(exc).startswith(f"POST {shown}: ")
    if case in ("error-page", "retry-after"):
        assert "HTTP 5" in error["message"] or "HTTP 429" in error["message"]
        assert "***" in error["message"]  # the quoted request was there, scrubbed
    assert len(events) == 1
    assert_no_url_secret(str(exc), "exception message")
    assert_no_url_secret(repr(exc), "exception repr")
    assert_no_url_secret("".join(traceback.format_exception(exc)), "exception traceback")
    assert_no_url_secret(json.dumps(error), "stored error record")
    assert_no_url_secret(events[0]["payload"], "job.failed event")
    assert_no_url_secret(stored, "database")
    assert_no_url_secret(repr(binding), "binding repr")
    assert_no_url_secret(caplog.text, "logs")
    if case == "error-page":  # httpx's own request line is logged, redacted
        assert "HTTP Request: POST http://***@" in caplog.text


def test_redact_url_hides_userinfo_and_secret_looking_parameters() -> None:
    names: tuple[str, ...]  # grows below
    names = ("Access_Token", "APIKEY", "auth", "password", "secret", "sig", "signature")
    names += ("key", "api_key", "apikey", "token")  # the list of issue 14, mixed case
    every_listed_name = "&".join(f"{name}=v{i}" for i, name in enumerate(names))
    cases = [
        ("https://u:p@h.example/x?token=t&n=1", "https://***@h.example/x?token=***&n=1"),
        ("https://ghp_abc@h.example/", "https://***@h.example/"),  # a token as the user
        (f"https://h.example/x?{every_listed_name}", None),
        (
            "https://h.example/s?X-Amz-Signature=a&clientSecret=b&keyword=c&page=2",
            "https://h.example/s?X-Amz-Signature=***&clientSecret=***&keyword=c&page=2",
        ),
        (
            "https://h.example/cb#access_token=a&state=b",
            "https://h.example/cb#access_token=***&state=b",
        ),
        ("https://h.example/x?token", "https://h.example/x?token"),  # no value to hide
        ("https://h.example/plain", "https://h.example/plain"),
    ]
    for url, expected in cases:
        shown = redact_url(url)
        if expected is None:
            assert not any(f"=v{i}" in shown for i in range(11)), shown
            assert shown.count("=***") == 11, shown
        else:
            assert shown == expected, url
    # Malformed (a password with a "/" makes the port unreadable): not shown at all.
    assert "hunter2" not in redact_url("https://user:hun/ter2@h.example/")
    assert "ter2" not in redact_url("https://user:hun/ter2@h.example/")


def test_binding_repr_and_validation_errors_hide_url_secrets() -> None:
    client = awa.Client("postgresql://localhost/unused")
    binding = http_worker(
        client,
        "k-secret",
        secret_url("h.example", "/x"),
        mode="async",
        callback_url=f"https://cb:{URL_PASSWORD}@ingress.example/awa?token={URL_TOKEN}",
        headers={"authorization": f"Bearer {URL_KEY}"},
    )
    assert_no_url_secret(repr(binding), "repr")
    assert "h.example" in repr(binding) and "authorization" in repr(binding)
    with pytest.raises(ValidationError) as caught:
        http_worker(client, "k-ftp", f"ftp://u:{URL_PASSWORD}@h.example/?token={URL_TOKEN}")
    assert_no_url_secret(str(caught.value), "message")
    assert_no_url_secret(repr(caught.value.value), "value attribute")
    with pytest.raises(ValidationError) as caught:
        http_worker(client, "k-bad", f"http://u:{URL_PASSWORD}/x@h.example/")
    assert_no_url_secret(str(caught.value), "malformed URL")
