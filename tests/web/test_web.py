"""Operator surfaces over real HTTP on loopback: the runtime's health endpoint and the
built-in lane dashboard (served by uvicorn via ``awa.web.serve``), and ``--watch``."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import anyio
import httpx

import awa
from awa.config import MaintenanceConfig
from awa.web import dashboard_app, health_app, serve


async def test_health_endpoint_reports_readiness_and_leadership(database_url: str) -> None:
    client = awa.Client(database_url)
    config = MaintenanceConfig(startup_jitter=0, election_interval=0.2, health_interval=0.2)
    runtime = awa.Runtime(client, maintenance=config)
    async with client, anyio.create_task_group() as tg:
        port = await tg.start(serve, health_app(runtime), "127.0.0.1", 0)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/readyz")).status_code == 503  # not started yet
            await runtime.start()
            assert (await http.get("/livez")).status_code == 200
            assert (await http.get("/readyz")).status_code == 200
            with anyio.fail_after(15):
                while True:
                    body = (await http.get("/health")).json()
                    if body["maintenance"]["leader"] and body["maintenance"]["branches"]:
                        break
                    await anyio.sleep(0.05)
            assert body["instance_id"] == runtime.instance_id
            assert (await http.get("/healthz")).json()["instance_id"] == runtime.instance_id
            assert body["maintenance"]["mode"] == "split"
            assert "promote_scheduled" in body["maintenance"]["branches"]
            assert body["maintenance"]["branches"]["promote_scheduled"]["lane"] == "slo"
            assert (await http.get("/nope")).status_code == 404
            await runtime.shutdown()
            assert (await http.get("/readyz")).status_code == 503
            assert (await http.get("/livez")).status_code == 503
        tg.cancel_scope.cancel()


async def test_dashboard_serves_page_and_persisted_status(database_url: str) -> None:
    client = awa.Client(database_url)
    config = MaintenanceConfig(
        startup_jitter=0, health_interval=0.1, intervals={"queue_stats": 0.1}
    )
    async with client, awa.Runtime(client, maintenance=config), anyio.create_task_group() as tg:
        await client.insert("k", {}, delay=3600)
        port = await tg.start(serve, dashboard_app(database_url), "127.0.0.1", 0)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            page = await http.get("/")
            assert page.status_code == 200 and "awa — maintenance lanes" in page.text
            assert (await http.get("/index.html")).text == page.text
            with anyio.fail_after(15):
                while True:
                    status = (await http.get("/api/status")).json()
                    if status["leader"] and status["branches"] and status["queues"]:
                        break
                    await anyio.sleep(0.05)
        assert {b["branch"] for b in status["branches"]} >= {"promote_scheduled", "cleanup"}
        assert {"queue": "default", "state": "scheduled"}.items() <= status["queues"][0].items()
        tg.cancel_scope.cancel()


def test_cli_watch_and_dashboard_help(database_url: str) -> None:
    base = [sys.executable, "-m", "awa.cli.main", "--database-url", database_url]
    try:
        out = subprocess.run(
            [*base, "maintenance", "status", "--watch", "0.2"],
            check=False,
            capture_output=True,
            text=True,
            timeout=3,
        )
    except subprocess.TimeoutExpired as exc:
        printed = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    else:
        raise AssertionError(f"--watch exited on its own: {out.returncode} {out.stderr}")
    assert printed.count("no maintenance leader has run against this database yet") >= 2
    helptext = subprocess.run(
        [*base, "dashboard", "--help"], check=False, capture_output=True, text=True, timeout=60
    ).stdout
    assert "--port" in helptext


def test_cli_maintenance_run_serves_health_and_prometheus(database_url: str) -> None:
    """`awa maintenance run --health-port 0 --metrics-port 0`: both endpoints answer, the
    branch metrics are scraped, and SIGINT shuts it down cleanly."""
    command = [
        sys.executable, "-m", "awa.cli.main", "--database-url", database_url,
        "maintenance", "run", "--health-port", "0", "--metrics-port", "0",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        urls: dict[str, str] = {}
        while len(urls) < 3:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "no output"
            if "Prometheus metrics on" in line:
                urls["metrics"] = line.split()[-1]
            elif "health endpoint on" in line:
                urls["health"] = line.split()[-1]
            elif "does not execute jobs" in line:
                urls["banner"] = line
        deadline = time.monotonic() + 30
        while True:
            scrape = httpx.get(urls["metrics"]).text
            # A run, not only the lane's start: the overrun counter's series exist at 0
            # from then (ADR 025), the duration histogram only after a body ran.
            if re.search(r'branch_duration\S*\{[^}]*="promote_scheduled"', scrape):
                break
            assert time.monotonic() < deadline, scrape[-2000:]
            time.sleep(0.2)
        assert "awa_maintenance_branch_duration" in scrape
        health = httpx.get(urls["health"]).json()
        assert health["role"] == "maintenance" and health["queues"] == {}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


async def test_health_app_mounted_under_a_prefix_in_fastapi(database_url: str) -> None:
    """Mounted at ``/ops`` in a FastAPI app (issue 17: the hand-routed app answered 404
    there), every endpoint answers under the prefix, with the runtime's real state."""
    from fastapi import FastAPI

    client = awa.Client(database_url)
    runtime = awa.Runtime(client, maintenance=MaintenanceConfig(startup_jitter=0))
    api = FastAPI()
    api.mount("/ops", health_app(runtime))
    async with client, anyio.create_task_group() as tg:
        port = await tg.start(serve, api, "127.0.0.1", 0)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/ops/readyz")).status_code == 503
            async with runtime:
                live = await http.get("/ops/livez")
                assert (live.status_code, live.text) == (200, "ok")
                assert live.headers["cache-control"] == "no-store"
                assert (await http.get("/ops/readyz")).status_code == 200
                body = (await http.get("/ops/health")).json()
                assert body["instance_id"] == runtime.instance_id and body["ready"] is True
                assert (await http.get("/ops/healthz")).status_code == 200
                assert (await http.get("/ops/nope")).status_code == 404
                assert (await http.get("/livez")).status_code == 404  # only under the prefix
        tg.cancel_scope.cancel()
