"""``examples/fastapi/``: the FastAPI producer served for real (uvicorn on a loopback port,
its lifespan opening the shared ``awa.Client``), and its worker run as users run it
(``awa worker --app jobs:client`` in a child process, from the example's folder).

Jobs are inserted over HTTP, one inside the request's own transaction (``conn=``); the
worker runs them and the GET endpoint reports them completed with their results. An order
refused after its job was inserted leaves neither the order nor the job behind.
"""

from __future__ import annotations

import signal
from typing import Any

import anyio
import asyncpg
import httpx
import pytest

from awa.web import serve
from support.cli_process import awa_env, spawn_awa
from support.examples import EXAMPLES, LoadExample


async def wait_for_state(http: httpx.AsyncClient, job_id: int, state: str) -> dict[str, Any]:
    with anyio.fail_after(60):  # a bound, not a measurement: the worker starts in a child
        while True:
            response = await http.get(f"/jobs/{job_id}")
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            if body["state"] == state:
                return body
            await anyio.sleep(0.1)


async def test_orders_are_inserted_over_http_and_run_by_the_worker(
    database_url: str,
    raw: asyncpg.Connection,
    example: LoadExample,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWA_DATABASE_URL", database_url)  # as a deployment sets it
    jobs = example("fastapi", "jobs")
    api = example("fastapi", "api")
    jobs.client.set_database_url(database_url)  # as AWA_DATABASE_URL would
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, api.app, "127.0.0.1", 0)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            placed = await http.post("/orders", json={"email": "ada@example.com"})
            assert placed.status_code == 201, placed.text
            order_id, confirm_id = placed.json()["order_id"], placed.json()["job_id"]
            receipt = await http.post(f"/orders/{order_id}/receipt", json={"email": "a@b.c"})
            assert receipt.status_code == 202, receipt.text
            receipt_id = receipt.json()["job_id"]

            console = await http.get("/ops/api/queues")  # the console mounted under /ops
            assert console.status_code == 200, console.text
            assert (await http.get("/ops/")).status_code == 200

            refused = await http.post("/orders", json={"email": "nobody"})
            assert refused.status_code == 422, refused.text
            assert (await http.get(f"/jobs/{confirm_id + 1000}")).status_code == 404

            waiting = await http.get(f"/jobs/{confirm_id}")
            assert waiting.json()["state"] == "available"  # no worker yet

            worker = spawn_awa(
                "worker", "--app", "jobs:client", "--queue", "orders=2",
                cwd=EXAMPLES / "fastapi",
                env=awa_env(AWA_DATABASE_URL=database_url),
            )  # fmt: skip
            try:
                confirmed = await wait_for_state(http, confirm_id, "completed")
                sent = await wait_for_state(http, receipt_id, "completed")
                worker.send_signal(signal.SIGTERM)
                output, _ = await anyio.to_thread.run_sync(lambda: worker.communicate(timeout=60))
            finally:
                worker.kill()
                worker.wait()
        tg.cancel_scope.cancel()

    assert worker.returncode == 0, output
    assert "Traceback" not in output, output
    assert confirmed["kind"] == "confirm_order"
    assert confirmed["result"] == {"confirmed": order_id}
    assert sent["result"] == {"sent_to": "a@b.c"}
    # The refused order rolled back with its job: one order, one confirm_order job.
    assert await raw.fetchval("SELECT count(*) FROM shop_orders") == 1
    kinds = await raw.fetch("SELECT kind FROM awa.all_jobs ORDER BY id")
    assert [r["kind"] for r in kinds] == ["confirm_order", "send_receipt"]
