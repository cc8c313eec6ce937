"""Security: migrations by a privileged owner role, the whole runtime with the least-privilege
role of ``docs/security.md`` (its SQL blocks are executed verbatim, so the document cannot
drift from what is tested), and secrets (database passwords, callback tokens, webhook and
ingress secrets) kept out of logs, error messages, CLI output and stored rows.

Known gaps are strict xfails with ``reason="BUG: ..."``: each passes once its fix lands,
and then the marker must go.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import os
import re
import secrets
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import asyncpg
import httpx
import pytest
from anyio.streams.memory import MemoryObjectSendStream

import awa
from awa import callbacks as callbacks_module
from awa import signing
from awa.callbacks import Callbacks
from awa.config import MaintenanceConfig
from awa.events import webhook
from awa.maintenance import BranchContext
from awa.maintenance.branches.deliver_events import DeliverEvents
from awa.maintenance.tick import BranchReport
from awa.model import Callback, InsertParams, JobState
from awa.outcomes import WaitForCallback
from awa.store import FinishedAttempt, Store
from awa.store.callbacks import Callbacks as StoreCallbacks
from awa.web import ingress as ingress_module
from awa.web import serve
from awa.web.ingress import callback_app

DOC = Path(__file__).resolve().parents[1] / "docs" / "security.md"

#: Placeholders used by the SQL blocks of docs/security.md.
_PLACEHOLDERS = ("awa_owner", "awa_runtime", "awa_db", "owner-password", "runtime-password")


def doc_sql(tag: str, names: dict[str, str]) -> list[str]:
    """The statements of the ``-- awa-security: <tag>`` SQL block of docs/security.md, with
    the placeholder role, database and password names replaced by ``names``."""
    for block in re.findall(r"```sql\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S):
        if block.startswith(f"-- awa-security: {tag}\n"):
            text = block
            for placeholder in _PLACEHOLDERS:
                text = re.sub(rf"\b{re.escape(placeholder)}\b", names[placeholder], text)
            return [s.strip() for s in text.split(";") if s.strip()]
    raise AssertionError(f"docs/security.md has no `-- awa-security: {tag}` SQL block")


def role_url(server_url: str, user: str, password: str, database: str) -> str:
    """``server_url`` (TCP or a unix socket in ``?host=``) logging in as ``user``."""
    parts = urlsplit(server_url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return parts._replace(netloc=netloc, path=f"/{database}").geturl()


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Deployment:
    """A private database with the owner and runtime roles of docs/security.md."""

    database: str
    owner: str
    runtime: str
    admin_url: str  # the server's own (super)user, inside the private database
    owner_url: str
    runtime_url: str
    runtime_password: str
    applied: list[int]


@pytest.fixture
async def deployment(server_url: str) -> AsyncIterator[Deployment]:
    suffix = uuid.uuid4().hex[:10]
    database, owner, runtime = f"awa_sec_{suffix}", f"awa_owner_{suffix}", f"awa_rt_{suffix}"
    owner_password, runtime_password = secrets.token_hex(12), secrets.token_hex(12)
    names = {
        "awa_owner": owner,
        "awa_runtime": runtime,
        "awa_db": database,
        "owner-password": owner_password,
        "runtime-password": runtime_password,
    }
    admin = await asyncpg.connect(server_url)
    try:
        allowed = await admin.fetchval(
            "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
        )
        if not allowed:
            pytest.skip("the test server's role cannot CREATE ROLE")
        await admin.execute(f'CREATE DATABASE "{database}"')
        for statement in doc_sql("setup", names):
            await admin.execute(statement)
    finally:
        await admin.close()
    admin_url = urlsplit(server_url)._replace(path=f"/{database}").geturl()
    owner_url = role_url(server_url, owner, owner_password, database)
    runtime_url = role_url(server_url, runtime, runtime_password, database)
    try:
        applied = await awa.Client(owner_url).migrate()
        conn = await asyncpg.connect(owner_url)
        try:
            for statement in doc_sql("grants", names):
                await conn.execute(statement)
            # Hardening beyond the defaults: prove the runtime needs EXECUTE on no awa
            # function but the one the grants name (awa.history_row; the rest are
            # trigger functions).
            await conn.execute("REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA awa FROM PUBLIC")
        finally:
            await conn.close()
        yield Deployment(
            database,
            owner,
            runtime,
            admin_url,
            owner_url,
            runtime_url,
            runtime_password,
            applied,
        )
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            await admin.execute(f"DROP ROLE IF EXISTS {runtime}")
            await admin.execute(f"DROP ROLE IF EXISTS {owner}")
        finally:
            await admin.close()


async def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll the async ``check`` until it returns something truthy."""
    with anyio.fail_after(timeout):
        while True:
            value = await check()
            if value:
                return value
            await anyio.sleep(0.05)


def run_cli(*argv: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "awa.cli.main", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "AWA_DATABASE_URL"},
    )


# ------------------------------------------------------------------ least privilege


async def test_runtime_runs_with_the_documented_least_privilege_role(
    deployment: Deployment,
) -> None:
    d = deployment
    assert d.applied and d.applied == sorted(d.applied)  # the owner applied every migration

    # The runtime role is what docs/security.md says: no superuser, owns nothing, cannot
    # create anything.
    admin = await asyncpg.connect(d.admin_url)
    try:
        audit = await admin.fetchrow(
            """SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls,
                      has_database_privilege($1, current_database(), 'CREATE') AS db_create,
                      has_database_privilege($1, current_database(), 'TEMPORARY') AS db_temp,
                      has_schema_privilege($1, 'awa', 'CREATE') AS schema_create,
                      (SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid) AS owned
                 FROM pg_roles r WHERE r.rolname = $1""",
            d.runtime,
        )
    finally:
        await admin.close()
    assert audit is not None and not any(audit.values()), dict(audit or {})

    client = awa.Client(d.runtime_url)
    parked_send, parked_receive = anyio.create_memory_object_stream[Callback](10)
    events: list[awa.Event] = []

    @client.handler("ok")
    async def ok(ctx: awa.JobContext) -> dict[str, int]:
        return {"id": ctx.job.id}

    @client.handler("boom", queue="doomed")
    async def boom(ctx: awa.JobContext) -> None:
        raise RuntimeError("boom")

    @client.handler("external")
    async def external(ctx: awa.JobContext) -> Any:
        callback = await ctx.register_callback(timeout=60)
        await parked_send.send(callback)
        return WaitForCallback(callback)

    client.schedule("every_second", "* * * * * *", "ok")
    client.dlq.declare("doomed")
    config = awa.RuntimeConfig(
        queues={"default": 4, "doomed": 2}, heartbeat_interval=0.2, poll_interval=0.2
    )
    fast = MaintenanceConfig(
        startup_jitter=0,
        election_interval=0.2,
        intervals={"deliver_events": 0.2, "dead_letter": 0.2, "cron_evaluate": 0.5},
    )
    sink = awa.CallableSink("collect", events.append)
    async with client, awa.Runtime(client, config, maintenance=fast, sinks=[sink]) as runtime:
        plain = [await client.insert("ok", {"i": i}) for i in range(3)]
        # scope "all": the first may already have completed when the second arrives
        first = await client.insert("ok", {"u": 1}, unique_key="only-one", unique_scope="all")
        again = await client.insert("ok", {"u": 2}, unique_key="only-one", unique_scope="all")
        bulk = await client.insert_many([client.params("ok", {"b": i}) for i in range(10)])
        doomed = await client.insert("boom", max_attempts=1)
        later = await client.insert("ok", delay=3600)
        parked = await client.insert("external")
        cancelled = await client.cancel_job(later.id)

        with anyio.fail_after(20):
            callback = await parked_receive.receive()

        async def parked_waits() -> bool:
            job = await client.get_job(parked.id)
            return job.state is JobState.WAITING_EXTERNAL

        await eventually(parked_waits)
        resolution = await client.callbacks.complete(callback.id, callback.token, {"ok": 1})

        async def all_done() -> bool:
            ids = [j.id for j in plain] + [first.id, *bulk, parked.id]
            jobs = [await client.get_job(i) for i in ids]
            return all(j.state is JobState.COMPLETED for j in jobs)

        async def letter_and_event() -> bool:
            letters = await client.dlq.list_letters()
            return bool(letters) and any(e.kind == "job.failed" for e in events)

        async def cron_fired() -> bool:
            return any(s["last_fire_at"] for s in await client.list_schedules())

        await eventually(all_done)
        await eventually(letter_and_event)
        await eventually(cron_fired)
        assert runtime.leader is not None and runtime.leader.is_leader
    parked_send.close()
    parked_receive.close()

    assert again.duplicate and again.id == first.id
    assert cancelled.state is JobState.CANCELLED
    assert resolution.state == "completed"
    assert await dead_letter_ids(d) == [doomed.id]

    # The CLI, as the runtime role.
    listed = run_cli("--database-url", d.runtime_url, "jobs", "list", "--json", "--limit", "100")
    assert listed.returncode == 0, listed.stderr
    assert {j["id"] for j in json.loads(listed.stdout)} >= {j.id for j in plain}
    for argv in (("queues", "--json"), ("maintenance", "status", "--json"), ("cron", "list")):
        result = run_cli("--database-url", d.runtime_url, *argv)
        assert result.returncode == 0, (argv, result.stderr)
        assert d.runtime_password not in result.stdout + result.stderr

    # Every maintenance branch, rotate included, as the runtime role: age the finished
    # history into a non-current ring slot so rotate has a slot to TRUNCATE.
    admin = await asyncpg.connect(d.admin_url)
    try:
        await admin.execute(
            "UPDATE awa.jobs_done SET slot = 3, finalized_at = now() - interval '2 hours'"
        )
    finally:
        await admin.close()
    short = MaintenanceConfig(
        startup_jitter=0, retention={"completed": 60.0, "failed": 60.0, "cancelled": 60.0}
    )
    maintainer = awa.Client(d.runtime_url)
    async with maintainer:
        report = await awa.Runtime(maintainer, role="maintenance", maintenance=short).tick(
            force=True
        )
    assert report.leader
    assert not report.errors, [(b.branch, b.error) for b in report.branches if b.error]
    rotate = next(b for b in report.branches if b.branch == "rotate")
    assert rotate.rows.get("slots_pruned", 0) >= 1


async def dead_letter_ids(d: Deployment) -> list[int]:
    """The ids of the jobs held as dead letters (a letter keeps its job's id)."""
    conn = await asyncpg.connect(d.admin_url)
    try:
        rows = await conn.fetch("SELECT id FROM awa.dead_letters ORDER BY id")
    finally:
        await conn.close()
    return [int(r["id"]) for r in rows]


async def test_rotate_needs_truncate_on_the_ring_partitions(deployment: Deployment) -> None:
    """The one privilege beyond row access, measured: without TRUNCATE on the ring
    partitions the rotate branch fails (and finished history is never pruned)."""
    d = deployment
    owner = await asyncpg.connect(d.owner_url)
    admin = await asyncpg.connect(d.admin_url)
    try:
        store = await Store.open(d.runtime_url, max_size=1)
        try:
            await store.jobs.insert_job(InsertParams("gone", max_attempts=1))
            [job] = await store.jobs.claim_batch("default", ["gone"], 1, "test-worker")
            failed = FinishedAttempt(job.id, job.run_lease, JobState.FAILED, {"message": "x"})
            assert await store.jobs.finalize_batch([failed]) == {job.id}
        finally:
            await store.close()
        await admin.execute(
            "UPDATE awa.jobs_done SET slot = 3, finalized_at = now() - interval '2 hours'"
        )
        short = MaintenanceConfig(
            startup_jitter=0, retention={"completed": 60.0, "failed": 60.0, "cancelled": 60.0}
        )

        async def rotate_once() -> BranchReport:
            async with awa.Client(d.runtime_url) as client:
                report = await awa.Runtime(client, role="maintenance", maintenance=short).tick(
                    force=True
                )
            return next(b for b in report.branches if b.branch == "rotate")

        await owner.execute(f"REVOKE TRUNCATE ON awa.jobs_done_3 FROM {d.runtime}")
        refused = await rotate_once()
        assert refused.error is not None and "permission denied" in refused.error
        assert await admin.fetchval("SELECT count(*) FROM awa.jobs_done_3") == 1

        await owner.execute(f"GRANT TRUNCATE ON awa.jobs_done_3 TO {d.runtime}")
        pruned = await rotate_once()
        assert pruned.error is None and pruned.rows["slots_pruned"] == 1
        assert await admin.fetchval("SELECT count(*) FROM awa.jobs_done_3") == 0
    finally:
        await owner.close()
        await admin.close()


async def test_migrate_as_the_runtime_role_on_an_up_to_date_schema_is_a_no_op(
    deployment: Deployment,
) -> None:
    """Nothing is pending: the runtime role is told so (`awa worker --migrate` works with
    the least-privilege role), not refused."""
    assert await awa.Client(deployment.runtime_url).migrate() == []


async def test_migrate_as_the_runtime_role_with_work_pending_is_a_typed_error(
    deployment: Deployment,
) -> None:
    """A pending migration needs the owner: a MigrationError naming the role and what to
    do, and nothing half-applied."""
    latest = deployment.applied[-1]
    conn = await asyncpg.connect(deployment.owner_url)
    try:
        await conn.execute("DELETE FROM awa.schema_migrations WHERE version = $1", latest)
        with pytest.raises(awa.MigrationError) as caught:
            await awa.Client(deployment.runtime_url).migrate()
        assert deployment.runtime in str(caught.value) and "owner" in str(caught.value)
        assert await conn.fetchval("SELECT max(version) FROM awa.schema_migrations") < latest
    finally:
        await conn.close()


# ----------------------------------------------------------------- database passwords

PASSWORD = "Pw-" + secrets.token_hex(8)


def chain_text(exc: BaseException) -> str:
    """The messages of ``exc`` and everything it was raised from or during."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


async def test_unreachable_server_error_and_logs_do_not_carry_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"postgresql://awa:{PASSWORD}@127.0.0.1:{closed_port()}/awa"
    client = awa.Client(url)
    with pytest.raises(awa.DatabaseUnavailable) as caught:
        await client.connect()
    assert "***" in str(caught.value)  # the URL is shown, redacted
    assert PASSWORD not in chain_text(caught.value)
    assert PASSWORD not in caplog.text


async def test_refused_login_error_does_not_carry_the_password(server_url: str) -> None:
    url = role_url(server_url, f"awa_no_such_role_{uuid.uuid4().hex[:8]}", PASSWORD, "postgres")
    with pytest.raises(awa.ConfigError) as caught:
        await awa.Client(url).connect()
    assert "refused the login" in str(caught.value)
    assert PASSWORD not in chain_text(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(f"postgresql://awa:{PASSWORD}@localhost:notaport/awa", id="bad-port"),
        pytest.param(f"postgres-ql://awa:{PASSWORD}@localhost/awa", id="bad-scheme"),
        pytest.param(
            f"postgresql://awa:{PASSWORD}@10.0.0.1:5432,10.0.0.2:port/awa", id="multi-host"
        ),
    ],
)
async def test_malformed_url_error_does_not_carry_the_password(url: str) -> None:
    with pytest.raises(awa.ConfigError) as caught:
        await awa.Client(url).connect()
    assert PASSWORD not in chain_text(caught.value)


async def test_password_in_query_string_is_redacted_too() -> None:
    url = f"postgresql://awa@127.0.0.1:{closed_port()}/awa?password={PASSWORD}"
    with pytest.raises(awa.DatabaseUnavailable) as caught:
        await awa.Client(url).connect()
    assert PASSWORD not in chain_text(caught.value)


def test_cli_error_output_does_not_carry_the_password() -> None:
    url = f"postgresql://awa:{PASSWORD}@127.0.0.1:{closed_port()}/awa"
    for argv in (("jobs", "list"), ("-v", "queues", "--json"), ("maintenance", "status")):
        result = run_cli("--database-url", url, *argv)
        assert result.returncode == 2, (argv, result.stderr)
        assert result.stderr.startswith("awa: error:") or "\nawa: error:" in result.stderr
        assert "Traceback" not in result.stderr
        assert PASSWORD not in result.stdout + result.stderr, argv


def test_cli_malformed_url_error_does_not_carry_the_password() -> None:
    result = run_cli("--database-url", f"postgresql://awa:{PASSWORD}@db:port/awa", "jobs", "list")
    assert result.returncode == 2
    assert PASSWORD not in result.stdout + result.stderr


# --------------------------------------------------------------------- callback tokens


@contextlib.asynccontextmanager
async def ingress(
    client: awa.Client, secret: str | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    app = callback_app(Callbacks(client), secret=secret)
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, app, "127.0.0.1", 0)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            yield http
        tg.cancel_scope.cancel()


def parking(client: awa.Client, kind: str, out: MemoryObjectSendStream[Callback]) -> None:
    @client.handler(kind)
    async def handler(ctx: awa.JobContext) -> Any:
        callback = await ctx.register_callback(timeout=60)
        await out.send(callback)
        return WaitForCallback(callback)


@contextlib.contextmanager
def callback_channel() -> Iterator[tuple[MemoryObjectSendStream[Callback], Any]]:
    send, receive = anyio.create_memory_object_stream[Callback](10)
    with send, receive:
        yield send, receive


async def test_callback_token_is_stored_hashed_and_never_logged_echoed_or_shown(
    database_url: str, raw: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = awa.Client(database_url)
    with callback_channel() as (send, receive):
        parking(client, "external", send)
        config = awa.RuntimeConfig(queues={"default": 2}, heartbeat_interval=0.2)
        async with (
            client,
            awa.Runtime(client, config, run_maintenance=False),
            ingress(client) as http,
        ):
            job = await client.insert("external")
            with anyio.fail_after(15):
                callback = await receive.receive()
            token = callback.token
            assert token not in repr(callback) and token not in str(callback)

            # Stored as SHA-256 only: no column of its row holds the token.
            row = await raw.fetchrow(
                "SELECT * FROM awa.callbacks WHERE id = $1", uuid.UUID(callback.id)
            )
            assert row is not None
            assert bytes(row["token_hash"]) == hashlib.sha256(token.encode()).digest()
            assert token not in repr(dict(row))

            # A wrong token is refused without saying what the right one is.
            with pytest.raises(awa.AwaError) as caught:
                await client.callbacks.complete(callback.id, token[:-1] + "x", {"a": 1})
            assert token not in chain_text(caught.value)
            wrong = await http.post(
                f"/{callback.id}",
                json={"action": "complete"},
                headers={"authorization": f"Bearer {token[::-1]}"},
            )
            # 404, as for an unknown id: the answer does not say that this id exists.
            assert wrong.status_code == 404 and token not in wrong.text

            # The right one resolves it; nothing echoes it.
            ok = await http.post(
                f"/{callback.id}",
                json={"action": "complete", "payload": {"done": True}},
                headers={"authorization": f"Bearer {token}"},
            )
            assert ok.status_code == 200 and token not in ok.text

            async def completed() -> bool:
                return (await client.get_job(job.id)).state is JobState.COMPLETED

            await eventually(completed)
            again = await http.post(
                f"/{callback.id}",
                json={"action": "fail", "error": token},  # a client echoing the token back
                headers={"authorization": f"Bearer {token}"},
            )
            assert again.status_code == 409 and token not in again.text
            finished = await client.get_job(job.id)
            assert token not in json.dumps(finished.as_dict(), default=str)
    assert token not in caplog.text


def test_tokens_and_signatures_are_compared_in_constant_time() -> None:
    """Static guard: the comparisons that authenticate callers use hmac.compare_digest
    (a plain == leaks, through its early exit, how many leading bytes matched), and the
    ingress's unknown-id path does the same comparison (against a decoy) as a wrong token's,
    so its timing does not say which ids exist."""
    resolve = inspect.getsource(StoreCallbacks.resolve_callback)
    assert "hmac.compare_digest(" in resolve
    assert not re.search(r"token_hash\"\]\)?\s*[!=]=", resolve)
    # One scheme (ADR 019): awa.signing compares, every verifier goes through it.
    assert "hmac.compare_digest(" in inspect.getsource(signing.matches_any)
    assert "matches_any(" in inspect.getsource(signing.verify_header)
    for verify in (callbacks_module.verify_signature, callbacks_module.verify_callback_signature):
        assert "signing.verify_header(" in inspect.getsource(verify)
    assert "signing.matches_any(" in inspect.getsource(webhook.verify_signature)
    refusal = inspect.getsource(ingress_module.CallbackIngress._resolve)
    assert "hmac.compare_digest(hash_callback_token(token), _DECOY_HASH)" in refusal
    assert "verify_callback_signature(" in inspect.getsource(ingress_module.CallbackIngress)


# --------------------------------------------------------------------- webhook secrets

WEBHOOK_SECRET = "whsec-" + secrets.token_hex(12)
URL_PASSWORD = "urlpw-" + secrets.token_hex(6)


async def test_webhook_secret_and_url_credentials_stay_out_of_logs_and_stored_errors(
    database_url: str, raw: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"http://hook:{URL_PASSWORD}@127.0.0.1:{closed_port()}/events"
    sink = awa.WebhookSink("hooks", url, secret=WEBHOOK_SECRET, connect_timeout=1.0)
    assert WEBHOOK_SECRET not in repr(sink) and URL_PASSWORD not in repr(sink)
    store = await Store.open(database_url, max_size=2)
    try:
        await store.jobs.insert_job(InsertParams("flaky", max_attempts=1))
        [job] = await store.jobs.claim_batch("default", ["flaky"], 1, "test-worker")
        error = {"kind": "exception", "message": "boom"}
        await store.jobs.finalize_batch(
            [FinishedAttempt(job.id, job.run_lease, JobState.FAILED, error)]
        )
        ctx = BranchContext(store=store, clock=awa.SystemClock(), config=MaintenanceConfig())
        result = await DeliverEvents([sink]).run_once(ctx)
    finally:
        await store.close()
    assert result.rows["failed"] == 1  # the endpoint is down: the delivery failed
    stored = await raw.fetch("SELECT * FROM awa.event_deliveries")
    stored_text = json.dumps([dict(r) for r in stored], default=str)
    assert stored and all(r["last_error"] for r in stored)  # the failure was recorded
    for secret in (WEBHOOK_SECRET, URL_PASSWORD):
        assert secret not in stored_text
        assert secret not in caplog.text


def test_rejected_webhook_url_error_does_not_carry_its_credentials() -> None:
    with pytest.raises(awa.ValidationError) as caught:
        awa.WebhookSink("hooks", f"ftp://hook:{URL_PASSWORD}@example.com/", secret="s")
    assert URL_PASSWORD not in str(caught.value)
