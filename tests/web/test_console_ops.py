"""The console's operator pages' API (``console_ops_api``, ADR 033) over real HTTP against a
real PostgreSQL and real runtimes/leaders: health samples written by the leader with its
health interval (and the ring that bounds them), the cron page's pause / resume / run now,
the dead-letter page's list / retry / purge / purge all, the events outbox page, every
action refused without the operator token or CSRF secret; and the CLI fixes that go with
them (``awa dlq purge`` of a missing id fails; ``awa maintenance status`` reads the
persisted interval).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import asyncpg
import httpx
from fastapi import FastAPI

import awa
from awa.config import MaintenanceConfig
from awa.events.callable_sink import CallableSink
from awa.maintenance.lane import HEALTH_IDLE_STRETCH
from awa.store import Store
from awa.store.maintenance import HealthRow
from awa.web import console_app, serve
from support.cli_process import awa as run_awa
from support.cli_process import error_lines
from support.console import MailOutage, csrf_of, finished, served_console, until

TOKEN = "ops-operator-token"


@contextlib.asynccontextmanager
async def _console(
    database_url: str, **options: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """An HTTP client on a served console and the headers of an operator's POST."""
    async with (
        served_console(database_url, token=TOKEN, **options) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        csrf = csrf_of((await http.get("")).text)
        yield http, {"x-csrf-token": csrf, "authorization": f"Bearer {TOKEN}"}


async def _json(http: httpx.AsyncClient, path: str, **params: Any) -> Any:
    answer = await http.get(path, params=params)
    assert answer.status_code == 200, (path, answer.text)
    return answer.json()


async def test_leader_writes_samples_and_its_interval_the_console_charts_them(
    database_url: str,
) -> None:
    interval = 0.15
    client = awa.Client(database_url)
    config = MaintenanceConfig(startup_jitter=0, health_interval=interval, election_interval=0.2)
    async with client, _console(database_url) as (http, _):
        empty = await _json(http, "/api/lanes/history")
        assert empty["branches"] == [] and empty["stale"]
        async with awa.Runtime(client, maintenance=config):

            async def sampled() -> Any:
                h = await _json(http, "/api/lanes/history")
                by = {b["branch"]: b for b in h["branches"]}
                promote = by.get("promote_scheduled", {"samples": []})
                return h if len(promote["samples"]) >= 4 and not h["stale"] else None

            history = await until(sampled)
        # The interval the leader wrote with: its own, or its idle stretch (ADR 041).
        assert history["health_interval_s"] in (interval, interval * HEALTH_IDLE_STRETCH)
        assert history["health_interval_source"] == "leader"
        assert history["leader_alive"]
        promote = next(b for b in history["branches"] if b["branch"] == "promote_scheduled")
        assert promote["lane"] == "slo"
        seqs = [s["seq"] for s in promote["samples"]]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # one per health write
        times = [s["sampled_at"] for s in promote["samples"]]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert promote["samples"][0]["runs"] is None  # nothing before the first to diff
        assert all(s["runs"] >= 0 for s in promote["samples"][1:])
        lanes = await _json(http, "/api/lanes")
        assert lanes["health_interval_s"] in (interval, interval * HEALTH_IDLE_STRETCH)
        assert lanes["stale_after_s"] == 2 * lanes["health_interval_s"]
        one = await _json(http, "/api/lanes/history", branch="cleanup")
        assert [b["branch"] for b in one["branches"]] == ["cleanup"]

    # Told an interval, the console uses it instead of the leader's.
    async with _console(database_url, health_interval=7.0) as (http, _):
        lanes = await _json(http, "/api/lanes")
        assert (lanes["health_interval_s"], lanes["health_interval_source"]) == (7.0, "override")


async def test_the_sample_ring_is_bounded_and_overwritten_in_place(
    database_url: str, raw: asyncpg.Connection
) -> None:
    """Each write goes to slot seq % ring: the table never holds more than ring rows per
    branch, and they are the newest ones."""
    store = await Store.open(database_url, max_size=1)
    try:
        for n in range(1, 8):
            row = HealthRow(
                branch="ringed", lane="hygiene", interval_s=1.0, last_started_at=None,
                last_finished_at=None, last_duration_s=0.01 * n, last_lateness_s=0.0,
                runs=n, errors=0, overruns=0, delayed=False, rows_touched=0, last_error=None,
            )  # fmt: skip
            await store.health_history.record([row], "ring-test", interval=1.0, ring=3)
        samples = await store.health_history.samples("ringed")
    finally:
        await store.close()
    assert [s["seq"] for s in samples] == [5, 6, 7]
    assert [s["runs"] for s in samples] == [None, 1, 1]
    count = await raw.fetchval(
        "SELECT count(*) FROM awa.maintenance_health_samples WHERE branch = 'ringed'"
    )
    assert count == 3


async def test_cron_page_pauses_resumes_and_runs_now(database_url: str) -> None:
    client = awa.Client(database_url)
    client.schedule("nightly", "0 3 * * *", "report", queue="reports")
    config = awa.RuntimeConfig(queues={})
    async with (
        client,
        awa.Runtime(client, config, run_maintenance=False),
        _console(database_url) as (http, operator),
    ):
        (schedule,) = [
            s for s in (await _json(http, "/api/cron"))["schedules"] if s["name"] == "nightly"
        ]
        assert (schedule["fired_total"], schedule["operator_paused"]) == (0, False)

        refused = await http.post("/api/cron/nightly/run", headers={"x-csrf-token": "x"})
        assert refused.status_code == 403
        no_token = {"x-csrf-token": operator["x-csrf-token"]}
        assert (await http.post("/api/cron/nightly/run", headers=no_token)).status_code == 403

        ran = await http.post("/api/cron/nightly/run", headers=operator)
        assert ran.status_code == 200, ran.text
        job = ran.json()["job"]
        assert (job["kind"], job["queue"], job["state"]) == ("report", "reports", "available")
        assert job["metadata"]["awa.cron"]["schedule"] == "nightly"
        assert job["metadata"]["awa.cron"]["manual"] is True
        after = next(
            s for s in (await _json(http, "/api/cron"))["schedules"] if s["name"] == "nightly"
        )
        assert after["fired_total"] == 1 and after["last_fire_at"] is not None
        events = (await _json(http, "/api/events"))["events"]
        assert any(e["kind"] == "cron.fired" and e["job_id"] == job["id"] for e in events)

        paused = await http.post("/api/cron/nightly/pause", headers=operator)
        assert paused.json() == {"schedule": "nightly", "operator_paused": True}
        rows = (await _json(http, "/api/cron"))["schedules"]
        assert next(s for s in rows if s["name"] == "nightly")["operator_paused"] is True
        await http.post("/api/cron/nightly/resume", headers=operator)
        rows = (await _json(http, "/api/cron"))["schedules"]
        assert next(s for s in rows if s["name"] == "nightly")["operator_paused"] is False

        assert (await http.post("/api/cron/nope/run", headers=operator)).status_code == 404
        assert (await http.post("/api/cron/nightly/zap", headers=operator)).status_code == 400


async def test_dead_letter_page_lists_retries_and_purges(database_url: str) -> None:
    client = awa.Client(database_url)
    outage = MailOutage(client)
    async with (
        client,
        outage.runtime,
        _console(database_url) as (http, operator),
    ):
        jobs = [await client.insert("send", {"n": n}, max_attempts=1) for n in range(4)]

        async def held() -> Any:
            letters = (await _json(http, "/api/dead-letters"))["letters"]
            return letters if len(letters) == 4 else None

        letters = await until(held)
        assert [d["id"] for d in letters] == [j.id for j in reversed(jobs)]
        assert letters[0]["reason"] == "smtp down" and letters[0]["errors"] == 1
        page = await _json(http, "/api/dead-letters", limit=3)
        assert len(page["letters"]) == 3 and page["next_before_id"] == jobs[1].id
        rest = await _json(http, "/api/dead-letters", limit=3, before_id=page["next_before_id"])
        assert [d["id"] for d in rest["letters"]] == [jobs[0].id]

        outage.broken = False
        retried = await http.post(f"/api/dead-letters/{jobs[0].id}/retry", headers=operator)
        assert retried.status_code == 200, retried.text
        fresh = retried.json()["job"]
        assert (await finished(client, fresh["id"])).state == "completed"
        again = await http.post(f"/api/dead-letters/{jobs[0].id}/retry", headers=operator)
        assert again.status_code == 409  # already retried
        pending = (await _json(http, "/api/dead-letters"))["letters"]
        assert jobs[0].id not in [d["id"] for d in pending]
        shown = (await _json(http, "/api/dead-letters", retried="1"))["letters"]
        assert next(d for d in shown if d["id"] == jobs[0].id)["retried_job_id"] == fresh["id"]

        purged = await http.post(f"/api/dead-letters/{jobs[1].id}/purge", headers=operator)
        assert purged.json() == {"purged": 1}
        gone = await http.post(f"/api/dead-letters/{jobs[1].id}/purge", headers=operator)
        assert gone.status_code == 404

        no_confirm = await http.post("/api/dead-letters/purge", headers=operator, json={})
        assert no_confirm.status_code == 400
        no_csrf = await http.post(
            "/api/dead-letters/purge", headers={"authorization": f"Bearer {TOKEN}"},
            json={"confirm": "purge"},
        )  # fmt: skip
        assert no_csrf.status_code == 403
        everything = await http.post(
            "/api/dead-letters/purge", headers=operator, json={"confirm": "purge"}
        )
        assert everything.json() == {"purged": 3}
        assert (await _json(http, "/api/dead-letters", retried="1"))["letters"] == []


async def test_events_page_shows_sinks_with_backlog_and_recent_events(database_url: str) -> None:
    delivered: list[str] = []
    client = awa.Client(database_url)

    @client.handler("doomed")
    async def doomed(ctx: awa.JobContext) -> None:
        raise RuntimeError("no luck")  # a job that fails for good writes job.failed

    sink = CallableSink("audit", lambda event: delivered.append(event.kind))
    maintenance = MaintenanceConfig(
        startup_jitter=0, election_interval=0.2, intervals={"deliver_events": 0.1}
    )
    async with (
        client,
        awa.Runtime(client, maintenance=maintenance, sinks=[sink]),
        _console(database_url) as (http, _),
    ):
        job = await client.insert("doomed", {}, max_attempts=1)

        async def shown() -> Any:
            page = await _json(http, "/api/events")
            ours = [e for e in page["events"] if e["job_id"] == job.id]
            delivered_ = ours and ours[0]["deliveries"] and ours[0]["deliveries"][0]["delivered_at"]
            # The sink's totals are written by the statement after the deliveries' (one run
            # of deliver_events records outcomes, then the sink's health): wait for both.
            counted = any(s["sink"] == "audit" and s["delivered_total"] for s in page["sinks"])
            return page if delivered_ and counted else None

        page = await until(shown)
        (audit,) = [s for s in page["sinks"] if s["sink"] == "audit"]
        assert {"pending", "parked", "failures", "delivered_total"} <= set(audit)
        ours = [e for e in page["events"] if e["job_id"] == job.id]
        assert ours[0]["deliveries"][0]["sink"] == "audit"
        assert "job.failed" in delivered and audit["delivered_total"] >= 1
        one = await _json(http, "/api/events", limit=1)
        assert len(one["events"]) == 1 and one["next_before_id"] == one["events"][0]["id"]
        assert (await http.get("/api/events", params={"limit": 0})).status_code == 400
        for page_path in ("/cron", "/dead-letters", "/events"):
            assert (await http.get(page_path)).status_code == 200


def test_cli_dlq_purge_of_a_missing_id_fails_and_purges_nothing(database_url: str) -> None:
    done = run_awa("--database-url", database_url, "dlq", "purge", "987654321")
    assert done.returncode != 0 and done.stdout == ""
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and lines[0].startswith("awa: error: "), done.stderr
    assert "987654321" in lines[0]


async def test_cli_maintenance_status_reads_the_persisted_interval(database_url: str) -> None:
    client = awa.Client(database_url)
    config = MaintenanceConfig(startup_jitter=0, health_interval=0.25, election_interval=0.2)
    async with client, awa.Runtime(client, maintenance=config):

        async def status() -> Any:
            argv = ("--database-url", database_url, "maintenance", "status", "--json")
            done = await anyio.to_thread.run_sync(lambda: run_awa(*argv))
            assert done.returncode == 0, done.stderr
            doc = json.loads(done.stdout)
            return doc if doc["branches"] and not doc["stale"] else None

        doc = await until(status)
    # The leader's interval, or its idle stretch (ADR 041), and STALE at twice it.
    assert doc["health_interval_s"] in (0.25, 0.25 * HEALTH_IDLE_STRETCH)
    assert doc["health_interval_source"] == "leader"
    assert doc["leader_alive"] and doc["stale_after_s"] == 2 * doc["health_interval_s"]


async def test_operator_pages_and_actions_answer_under_ops_in_fastapi(database_url: str) -> None:
    """Mounted at ``/ops`` in FastAPI, every operator page, read and action reaches its
    handler (a hand-routed app answered 404 under a prefix; issue 17)."""
    console = console_app(database_url, token=TOKEN)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await console.state.close()  # a mounted app's own lifespan does not run

    app = FastAPI(lifespan=lifespan)
    app.mount("/ops", console)
    client = awa.Client(database_url)
    client.schedule("nightly", "0 3 * * *", "report", queue="reports")
    async with (
        client,
        awa.Runtime(client, awa.RuntimeConfig(queues={}), run_maintenance=False),
        anyio.create_task_group() as tg,
    ):
        port = await tg.start(serve, app, "127.0.0.1", 0)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for page in ("/ops/cron", "/ops/dead-letters", "/ops/events"):
                answer = await http.get(page)
                assert answer.status_code == 200, page
                assert '<base href="/ops/">' in answer.text
            assert (await http.get("/ops/static/console_ops.js")).status_code == 200
            for api in ("lanes", "lanes/history", "cron", "dead-letters", "events"):
                assert (await http.get(f"/ops/api/{api}")).status_code == 200, api
            operator = {"x-csrf-token": csrf_of(answer.text), "authorization": f"Bearer {TOKEN}"}
            for action in ("cron/nightly/pause", "cron/nightly/resume", "cron/nightly/run"):
                done = await http.post(f"/ops/api/{action}", headers=operator)
                assert done.status_code == 200, (action, done.text)
            missing = await http.post("/ops/api/dead-letters/999999/purge", headers=operator)
            assert missing.status_code == 404, missing.text  # reached the handler
            purge = await http.post(
                "/ops/api/dead-letters/purge", headers=operator, json={"confirm": "purge"}
            )
            assert purge.status_code == 200 and purge.json() == {"purged": 0}, purge.text
        tg.cancel_scope.cancel()
