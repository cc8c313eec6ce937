"""The operator console's pages and JSON API over real HTTP (uvicorn on loopback) against a
real PostgreSQL: every page and read, every action refused without the operator token,
refused with a bad CSRF secret or a foreign ``Origin``, and done with both; read-only and
``read_only=False`` modes; the whole console mounted at ``/ops`` inside a FastAPI app; and
the lanes page marking a dead leader's data STALE within twice the health interval.
"""

from __future__ import annotations

import contextlib
import fnmatch
import signal
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

import awa
from awa.config import MaintenanceConfig
from awa.errors import ValidationError
from awa.web import console_app, serve
from support.cli_process import awa_env, spawn_awa, wait_for_line
from support.console import QUICK_RETRY, csrf_of, finished, served_console, until

TOKEN = "s3cret-operator-token"


async def _fail_twice(client: awa.Client) -> awa.Job:
    """A job whose handler raised on both of its two attempts (a real runtime ran it)."""

    @client.handler("flaky")
    async def flaky(ctx: awa.JobContext) -> None:
        raise RuntimeError(f"boom on attempt {ctx.job.attempt}")

    config = awa.RuntimeConfig(queues={"default": 2}, backoff=QUICK_RETRY)
    maintenance = MaintenanceConfig(startup_jitter=0, election_interval=0.2)
    async with awa.Runtime(client, config, maintenance=maintenance):
        job = await client.insert("flaky", {"n": 1}, max_attempts=2, metadata={"who": "test"})
        done = await finished(client, job.id)
    assert done.state == "failed"
    return done


@contextlib.asynccontextmanager
async def _operator(
    database_url: str, **options: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async with (
        served_console(database_url, **options) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        page = await http.get("")
        yield http, csrf_of(page.text)


async def test_pages_and_reads(database_url: str) -> None:
    client = awa.Client(database_url)
    async with client:
        failed = await _fail_twice(client)
        later = [await client.insert("later", {"i": i}, queue="slow", delay=3600) for i in range(3)]
        async with _operator(database_url) as (http, _):
            for page in ("", "index.html", "queues", "jobs", f"jobs/{failed.id}"):
                answer = await http.get(page)
                assert answer.status_code == 200, page
                assert '<base href="/">' in answer.text
            assert (await http.get("static/console.js")).status_code == 200
            assert "text/css" in (await http.get("static/console.css")).headers["content-type"]

            status = (await http.get("/api/status")).json()
            assert {"leader", "branches", "queues"} <= set(status)
            lanes = (await http.get("/api/lanes")).json()
            assert lanes["leader"] is not None  # the runtime above led maintenance
            assert lanes["health_interval_s"] == 5.0 and lanes["stale_after_s"] == 10.0

            # Jobs: newest first, filtered, keyset pages by before_id.
            listed = (await http.get("/api/jobs", params={"queue": "slow"})).json()
            assert [j["id"] for j in listed["jobs"]] == [j.id for j in reversed(later)]
            assert listed["next_before_id"] is None
            page1 = (await http.get("/api/jobs", params={"queue": "slow", "limit": 2})).json()
            assert [j["id"] for j in page1["jobs"]] == [later[2].id, later[1].id]
            assert page1["next_before_id"] == later[1].id
            page2 = (
                await http.get(
                    "/api/jobs",
                    params={"queue": "slow", "limit": 2, "before_id": page1["next_before_id"]},
                )
            ).json()
            assert [j["id"] for j in page2["jobs"]] == [later[0].id]
            by_state = (await http.get("/api/jobs", params={"state": "failed"})).json()
            assert [j["id"] for j in by_state["jobs"]] == [failed.id]
            assert by_state["jobs"][0]["errors"] == 2
            by_kind = (await http.get("/api/jobs", params={"kind": "later"})).json()
            assert len(by_kind["jobs"]) == 3
            assert (await http.get("/api/jobs", params={"state": "nope"})).status_code == 400
            assert (await http.get("/api/jobs", params={"before_id": "x"})).status_code == 400
            assert (await http.get("/api/jobs", params={"limit": 201})).status_code == 400

            # Detail: args, metadata, one error per failed attempt, timestamps.
            detail = (await http.get(f"/api/jobs/{failed.id}")).json()
            assert detail["args"] == {"n": 1} and detail["metadata"]["who"] == "test"
            assert [e["attempt"] for e in detail["errors"]] == [1, 2]
            assert "boom on attempt 2" in str(detail["errors"][1])
            assert detail["finalized_at"] and detail["attempted_at"]
            assert (await http.get("/api/jobs/999999999")).status_code == 404

            queues = (await http.get("/api/queues")).json()
            assert "queues" in queues and "stats_age_s" in queues
            session = (await http.get("/api/session")).json()
            assert session == {"operator": False, "read_only": True, "login": False}


async def test_actions_need_the_token_and_the_csrf_secret(database_url: str) -> None:
    client = awa.Client(database_url)
    async with client:
        failed = await _fail_twice(client)
        waiting = await client.insert("later", {}, queue="slow", delay=3600)
        await client.insert("later", {}, queue="slow")  # available: makes "slow" a known queue
        async with _operator(database_url, token=TOKEN) as (http, csrf):
            good = {"x-csrf-token": csrf}
            actions = [
                f"/api/jobs/{failed.id}/retry",
                f"/api/jobs/{waiting.id}/cancel",
                "/api/queues/slow/pause",
                "/api/queues/slow/resume",
            ]
            assert (await http.get("/api/session")).json()["login"] is True
            for path in actions:
                # No token (CSRF right): refused.
                refused = await http.post(path, headers=good)
                assert refused.status_code == 403, path
                assert "token" in refused.json()["error"]
                # Token, but no / a wrong CSRF secret, or a foreign Origin: refused.
                bearer = {"authorization": f"Bearer {TOKEN}"}
                assert (await http.post(path, headers=bearer)).status_code == 403
                wrong = {**bearer, "x-csrf-token": "forged"}
                assert (await http.post(path, headers=wrong)).status_code == 403
                foreign = {**bearer, **good, "origin": "https://evil.example"}
                assert (await http.post(path, headers=foreign)).status_code == 403
            assert (await client.get_job(failed.id)).state == "failed"  # nothing happened
            assert (await client.get_job(waiting.id)).state == "scheduled"
            assert not await client.queues.is_paused("slow")

            # A wrong login is refused; the right one sets the cookie the page relies on.
            bad = await http.post("/api/login", json={"token": "guess"}, headers=good)
            assert bad.status_code == 403
            login = await http.post("/api/login", json={"token": TOKEN}, headers=good)
            assert login.status_code == 200 and "awa_console_token" in http.cookies
            assert (await http.get("/api/session")).json()["operator"] is True
            # With the cookie, a same-origin POST still needs the CSRF secret.
            assert (await http.post(actions[0])).status_code == 403

            retried = await http.post(actions[0], headers=good)
            assert retried.status_code == 200 and retried.json()["state"] == "available"
            cancelled = await http.post(actions[1], headers=good)
            assert cancelled.json()["state"] == "cancelled"
            assert (await client.get_job(waiting.id)).state == "cancelled"
            paused = await http.post(actions[2], headers=good)
            assert paused.status_code == 200 and paused.json()["paused"] is True, paused.text
            assert await client.queues.is_paused("slow")
            shown = {q["queue"]: q for q in (await http.get("/api/queues")).json()["queues"]}
            assert shown["slow"]["paused"] and shown["slow"]["pause"]["paused_by"] == "console"
            assert (await http.post(actions[3], headers=good)).json()["resumed"] is True
            assert not await client.queues.is_paused("slow")

            # Behind a proxy that rewrites Host, the forwarded host is the browser's site.
            proxied = {**good, "origin": "https://ops.example", "x-forwarded-host": "ops.example"}
            assert (await http.post(actions[2], headers=proxied)).status_code == 200
            assert (await http.post(actions[3], headers=proxied)).status_code == 200

            # Bad requests are typed answers, not tracebacks.
            again = await http.post(actions[1], headers=good)
            assert again.status_code == 409  # a cancelled job cannot be cancelled
            assert (await http.post("/api/jobs/999999999/retry", headers=good)).status_code == 404
            assert (await http.post(f"/api/jobs/{failed.id}/zap", headers=good)).status_code == 400
            assert (await http.post("/api/queues/nosuch/pause", headers=good)).status_code == 400

            await http.post("/api/logout", headers=good)
            assert (await http.get("/api/session")).json()["operator"] is False


async def test_read_only_unless_told_otherwise(database_url: str) -> None:
    client = awa.Client(database_url)
    async with client:
        waiting = await client.insert("later", {}, delay=3600)
        path = f"/api/jobs/{waiting.id}/cancel"
        async with _operator(database_url) as (http, csrf):  # no token: read-only
            refused = await http.post(path, headers={"x-csrf-token": csrf})
            assert refused.status_code == 403 and "read-only" in refused.json()["error"]
            login = await http.post(
                "/api/login", json={"token": "x"}, headers={"x-csrf-token": csrf}
            )
            assert login.status_code == 403
        async with _operator(database_url, token=TOKEN, read_only=True) as (http, csrf):
            headers = {"x-csrf-token": csrf, "authorization": f"Bearer {TOKEN}"}
            assert (await http.post(path, headers=headers)).status_code == 403
        # Behind the application's own auth: anyone who reaches it may act, CSRF still holds.
        async with _operator(database_url, read_only=False) as (http, csrf):
            assert (await http.get("/api/session")).json()["operator"] is True
            assert (await http.post(path)).status_code == 403
            assert (await http.post(path, headers={"x-csrf-token": csrf})).status_code == 200
        assert (await client.get_job(waiting.id)).state == "cancelled"
    with pytest.raises(ValidationError):
        console_app(database_url, token="")


async def test_mounted_at_ops_in_fastapi_every_page_and_action_answers(database_url: str) -> None:
    console = console_app(database_url, token=TOKEN)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await console.state.close()  # a mounted app's own lifespan does not run

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    async def home() -> dict[str, str]:
        return {"app": "mine"}

    app.mount("/ops", console)
    client = awa.Client(database_url)
    async with client, anyio.create_task_group() as tg:
        failed = await _fail_twice(client)
        port = await tg.start(serve, app, "127.0.0.1", 0)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/")).json() == {"app": "mine"}
            for page in ("/ops/", "/ops/queues", "/ops/jobs", f"/ops/jobs/{failed.id}"):
                answer = await http.get(page)
                assert answer.status_code == 200, page
                assert '<base href="/ops/">' in answer.text  # every link resolves under /ops
            csrf = csrf_of(answer.text)
            assert (await http.get("/ops/static/console.js")).status_code == 200
            for api in ("status", "lanes", "queues", "jobs", f"jobs/{failed.id}", "session"):
                assert (await http.get(f"/ops/api/{api}")).status_code == 200, api
            good = {"x-csrf-token": csrf}
            assert (
                await http.post("/ops/api/login", json={"token": TOKEN}, headers=good)
            ).status_code == 200
            assert http.cookies.get("awa_console_token", path="/ops/") == TOKEN
            for action in (
                "queues/default/pause",
                "queues/default/resume",
                f"jobs/{failed.id}/retry",
            ):
                answer = await http.post(f"/ops/api/{action}", headers=good)
                assert answer.status_code == 200, (action, answer.text)
            # The bulk actions (ADR 032) answer under the prefix too.
            count = await http.get("/ops/api/jobs/bulk/cancel", params={"kind": "flaky"})
            assert count.status_code == 200 and count.json()["count"] == 1  # retried: live
            bulk = {"filter": {"kind": "flaky"}, "confirmed": 1}
            answer = await http.post("/ops/api/jobs/bulk/cancel", json=bulk, headers=good)
            assert answer.status_code == 200 and answer.json()["acted"] == 1, answer.text
            gone = await http.post(f"/ops/api/jobs/{failed.id}/discard", headers=good)
            assert gone.status_code == 200, gone.text
            assert (await http.get("/ops/nope")).status_code == 404
        tg.cancel_scope.cancel()


async def test_lanes_turn_stale_within_twice_the_health_interval_after_the_leader_stops(
    database_url: str,
) -> None:
    interval = 0.3
    client = awa.Client(database_url)
    config = MaintenanceConfig(startup_jitter=0, health_interval=interval, election_interval=0.2)
    async with client, _operator(database_url, health_interval=interval) as (http, _):

        async def lanes() -> dict[str, Any]:
            answer: dict[str, Any] = (await http.get("/api/lanes")).json()
            return answer

        before = await lanes()
        assert before["stale"] and not before["leader_alive"]  # nothing persisted yet
        async with awa.Runtime(client, maintenance=config):
            alive = await until(lambda: _when(lanes(), lambda s: not s["stale"] and s["branches"]))
            assert alive["leader_alive"] and alive["data_age_s"] <= 2 * interval
        stopped = anyio.current_time()
        stale = await until(lambda: _when(lanes(), lambda s: s["stale"]), timeout=10)
        # Within 2 x interval of the last write, which was at most one interval before the
        # stop (plus this poll's own step).
        assert anyio.current_time() - stopped <= 2 * interval + 1.5  # slack: a shared machine
        assert stale["leader"] is not None and not stale["leader_alive"]
        assert stale["data_age_s"] > 2 * interval


async def _when(answer: Any, predicate: Any) -> Any:
    value = await answer
    return value if predicate(value) else None


def test_cli_dashboard_takes_the_token_from_the_environment(database_url: str) -> None:
    """`awa dashboard` binds 127.0.0.1, says it needs a token, and the token from
    ``AWA_CONSOLE_TOKEN`` is the one that logs in."""
    dashboard = spawn_awa(
        "--database-url", database_url, "dashboard", "--port", "0",
        env=awa_env(AWA_CONSOLE_TOKEN=TOKEN),
    )  # fmt: skip
    try:
        (line,) = wait_for_line(dashboard, "awa dashboard on")[-1:]
        assert "http://127.0.0.1:" in line and "operator token required" in line
        base = line.split()[3]
        with httpx.Client(base_url=base) as http:
            csrf = csrf_of(http.get("").text)
            assert http.get("api/session").json() == {
                "operator": False, "read_only": False, "login": True,
            }  # fmt: skip
            headers = {"x-csrf-token": csrf}
            assert http.post("api/login", json={"token": "no"}, headers=headers).status_code == 403
            assert http.post("api/login", json={"token": TOKEN}, headers=headers).status_code == 200
            assert http.get("api/session").json()["operator"] is True
        dashboard.send_signal(signal.SIGINT)
        assert dashboard.wait(timeout=60) == 0
    finally:
        if dashboard.poll() is None:
            dashboard.kill()
            dashboard.wait()
        if dashboard.stdout is not None:
            dashboard.stdout.close()


def test_every_static_asset_ships_in_the_wheel() -> None:
    """``package-data`` names every file the console serves (no build step at install)."""
    root = Path(__file__).resolve().parents[2]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["awa"]
    static = root / "src" / "awa" / "web" / "static"
    assets = [p.relative_to(root / "src" / "awa").as_posix() for p in static.iterdir()]
    assert {"web/static/console.html", "web/static/console.js"} <= set(assets)
    assert all(any(fnmatch.fnmatch(a, g) for g in globs) for a in assets), (assets, globs)


async def test_queues_page_shows_throughput_from_the_leaders_window(database_url: str) -> None:
    """Jobs a real runtime completes show as completed/s on the queues API: the leader's
    queue_stats run counts them over its window (migration 17), the console divides."""
    client = awa.Client(database_url)

    @client.handler("tick", queue="busy")
    async def tick(ctx: awa.JobContext) -> None:
        return None

    config = awa.RuntimeConfig(queues={"busy": 4})
    maintenance = MaintenanceConfig(
        startup_jitter=0, election_interval=0.2, intervals={"queue_stats": 0.3}
    )
    async with (
        client,
        awa.Runtime(client, config, maintenance=maintenance),
        _operator(database_url) as (http, _),
    ):
        jobs = [await client.insert("tick", {"n": n}, queue="busy") for n in range(20)]
        for job in jobs:
            assert (await finished(client, job.id)).state == "completed"

        async def busy() -> dict[str, Any] | None:
            queues = (await http.get("/api/queues")).json()["queues"]
            row: dict[str, Any] | None = next((q for q in queues if q["queue"] == "busy"), None)
            return row if row is not None and row["per_s"].get("completed", 0) > 0 else None

        row = await until(busy)
        assert row is not None and row["per_s"].get("failed", 0) == 0
        assert 0 < row["per_s"]["completed"] <= 20 / 0.3 * 1.01  # never more than ran
