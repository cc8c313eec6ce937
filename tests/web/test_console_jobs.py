"""The console's jobs API beyond ADR 031 (ADR 032), over real HTTP against a real database:
the tag and finished-between filters, discard, and bulk retry / cancel / discard by filter
with a confirmed count — guarded like every action (operator token + CSRF secret), 409 when
the filter now matches more than was confirmed (nothing done), typed 400s for bad input."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio
import httpx

import awa
from awa.config import MaintenanceConfig
from support.console import QUICK_RETRY, csrf_of, finished, served_console, until

TOKEN = "bulk-operator-token"


async def _failing(client: awa.Client, n: int, queue: str, tags: list[str]) -> list[int]:
    """``n`` jobs a real runtime ran and failed (max_attempts 1)."""

    @client.handler("flaky", queue=queue)
    async def flaky(ctx: awa.JobContext) -> None:
        raise RuntimeError("upstream down")

    jobs = [
        await client.insert("flaky", {"i": i}, queue=queue, max_attempts=1, tags=tags)
        for i in range(n)
    ]
    config = awa.RuntimeConfig(queues={queue: 4}, backoff=QUICK_RETRY)
    async with awa.Runtime(client, config, maintenance=MaintenanceConfig(startup_jitter=0)):
        for job in jobs:
            assert (await finished(client, job.id)).state == "failed"
    return [j.id for j in jobs]


async def test_filters_bulk_actions_and_discard_over_http(database_url: str) -> None:
    async with (
        awa.Client(database_url) as client,
        served_console(database_url, token=TOKEN) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        failed = await _failing(client, 4, "mail", ["tenant:7"])
        later = [await client.insert("later", {}, queue="slow", delay=3600) for _ in range(3)]
        csrf = csrf_of((await http.get("jobs")).text)
        good = {"x-csrf-token": csrf}
        operator = {**good, "authorization": f"Bearer {TOKEN}"}

        # Filters: tag, finished-between (live jobs never match a window), bad input = 400.
        tagged = (await http.get("/api/jobs", params={"tag": "tenant:7"})).json()
        assert [j["id"] for j in tagged["jobs"]] == failed[::-1]
        assert tagged["jobs"][0]["tags"] == ["tenant:7"] and tagged["filter"] == {"tag": "tenant:7"}
        first = await client.get_job(failed[0])
        assert first.finalized_at is not None
        window = {
            "since": (first.finalized_at - timedelta(seconds=60)).isoformat(),
            "until": (first.finalized_at + timedelta(seconds=60)).isoformat(),
        }
        in_window = (await http.get("/api/jobs", params=window)).json()["jobs"]
        assert sorted(j["id"] for j in in_window) == sorted(failed)
        for bad in ({"since": "noon"}, {"until": "2026-12-06T02:00:00"}, {"state": "gone"}):
            answer = await http.get("/api/jobs", params=bad)
            assert answer.status_code == 400 and "invalid" in answer.json()["error"], bad

        # The confirmation's count, per action.
        count = await http.get("/api/jobs/bulk/retry", params={"queue": "mail"})
        assert count.json() == {"action": "retry", "filter": {"queue": "mail"}, "count": 4}
        cancel_count = await http.get("/api/jobs/bulk/cancel", params={"queue": "slow"})
        assert cancel_count.json()["count"] == 3
        assert (await http.get("/api/jobs/bulk/zap")).status_code == 400

        # Guarded like every action.
        body = {"filter": {"queue": "mail", "state": "failed"}, "confirmed": 4}
        assert (await http.post("/api/jobs/bulk/retry", json=body, headers=good)).status_code == 403
        bearer = {"authorization": f"Bearer {TOKEN}"}
        refused = await http.post("/api/jobs/bulk/retry", json=body, headers=bearer)
        assert refused.status_code == 403
        assert {(await client.get_job(i)).state for i in failed} == {awa.JobState.FAILED}

        # More match than confirmed: 409, nothing done.
        short = {**body, "confirmed": 3}
        grew = await http.post("/api/jobs/bulk/retry", json=short, headers=operator)
        assert grew.status_code == 409 and "matches 4 jobs" in grew.json()["error"]
        assert {(await client.get_job(i)).state for i in failed} == {awa.JobState.FAILED}
        bad_bodies: list[dict[str, Any]] = [
            {"filter": {}},
            {"filter": {}, "confirmed": "4"},
            {"filter": [1]},
            {"filter": {"queue": 5}, "confirmed": 1},
        ]
        for bad_body in bad_bodies:
            answer = await http.post("/api/jobs/bulk/retry", json=bad_body, headers=operator)
            assert answer.status_code == 400, bad_body
        assert (
            await http.post("/api/jobs/bulk/zap", json=body, headers=operator)
        ).status_code == 400

        done = await http.post("/api/jobs/bulk/retry", json=body, headers=operator)
        assert done.status_code == 200, done.text
        assert done.json()["acted"] == 4 and done.json()["matched"] == 4
        assert {(await client.get_job(i)).state for i in failed} == {awa.JobState.AVAILABLE}

        cancel = {"filter": {"queue": "slow"}, "confirmed": 3}
        cancelled = await http.post("/api/jobs/bulk/cancel", json=cancel, headers=operator)
        assert cancelled.json()["acted"] == 3
        assert {(await client.get_job(j.id)).state for j in later} == {awa.JobState.CANCELLED}
        discard = {"filter": {"queue": "slow", "state": "cancelled"}, "confirmed": 3}
        discarded = await http.post("/api/jobs/bulk/discard", json=discard, headers=operator)
        assert discarded.json()["acted"] == 3
        assert (await http.get(f"/api/jobs/{later[0].id}")).status_code == 404

        # Single discard: guarded; a running job answers 409 (cancel it first).
        one = await client.insert("later", {}, delay=3600)
        path = f"/api/jobs/{one.id}/discard"
        assert (await http.post(path, headers=good)).status_code == 403
        gone = await http.post(path, headers=operator)
        assert gone.status_code == 200 and gone.json()["discarded"] is True
        assert (await http.post(path, headers=operator)).status_code == 404

        @client.handler("stuck")
        async def stuck(ctx: awa.JobContext) -> None:
            await anyio.sleep(3600)

        async with awa.Runtime(client, maintenance=MaintenanceConfig(startup_jitter=0)):
            running = await client.insert("stuck", {})

            async def is_running() -> bool:
                return (await client.get_job(running.id)).state is awa.JobState.RUNNING

            await until(is_running)
            busy = await http.post(f"/api/jobs/{running.id}/discard", headers=operator)
            assert busy.status_code == 409 and "running" in busy.json()["error"]
            await client.cancel_job(running.id)
            await finished(client, running.id)
