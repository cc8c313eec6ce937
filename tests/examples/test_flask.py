"""``examples/flask/``: the Flask producer under a real threaded WSGI server (werkzeug,
one thread per request) with 8 request threads at once: no error, every job in the
database with what its request sent, an order and its job committed together, and a
refused order leaving neither behind. Its ``SyncClient`` is the module-level one the
example closes at exit; the test closes it itself.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg

from support.examples import LoadExample
from support.wsgi import serving

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "sync_flask.py"
THREADS = 8
REQUESTS_PER_THREAD = 12


def post(port: int, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if response.status < 300 else {}
    finally:
        conn.close()


def stored(url: str) -> tuple[dict[int, Any], dict[int, str]]:
    """Every job (id -> (kind, args, queue)) and every order (id -> email)."""

    async def read() -> tuple[dict[int, Any], dict[int, str]]:
        conn = await asyncpg.connect(url)
        try:
            jobs = await conn.fetch("SELECT id, kind, args, queue FROM awa.all_jobs")
            orders = await conn.fetch("SELECT id, email FROM flask_orders")
        finally:
            await conn.close()
        return (
            {r["id"]: (r["kind"], json.loads(r["args"]), r["queue"]) for r in jobs},
            {r["id"]: r["email"] for r in orders},
        )

    return asyncio.run(read())


def load(example: LoadExample, database_url: str) -> ModuleType:
    signup = example("flask", "signup")
    signup.client.set_database_url(database_url)  # as AWA_DATABASE_URL would
    signup.prepare_database()
    return signup


def test_eight_request_threads_insert_through_the_sync_client(
    database_url: str, example: LoadExample
) -> None:
    signup = load(example, database_url)
    try:
        with serving(signup.app) as server:
            port = server.server_port

            def requests(n: int) -> list[tuple[str, int, dict[str, Any], str]]:
                out = []
                for i in range(REQUESTS_PER_THREAD):
                    email = f"user{n}-{i}@example.com"
                    path = "/orders" if i % 2 else "/signup"
                    status, body = post(port, path, {"email": email})
                    out.append((path, status, body, email))
                return out

            with ThreadPoolExecutor(THREADS) as pool:
                answers = [a for batch in pool.map(requests, range(THREADS)) for a in batch]
            refused, _ = post(port, "/orders", {"email": "nobody"})
    finally:
        signup.sync.close()

    errors = [(path, status) for path, status, _, _ in answers if status != 201]
    assert errors == []
    assert len(answers) == THREADS * REQUESTS_PER_THREAD
    assert refused == 422
    jobs, orders = stored(database_url)
    expected_jobs = {}
    expected_orders = {}
    for path, _, body, email in answers:
        if path == "/signup":
            expected_jobs[body["job_id"]] = ("send_email", {"to": email}, "mail")
        else:
            args = {"to": email, "order": body["order_id"]}
            expected_jobs[body["job_id"]] = ("send_email", args, "mail")
            expected_orders[body["order_id"]] = email
    assert len(expected_jobs) == len(answers)  # one job per request, none shared
    assert jobs == expected_jobs  # and the refused order's job rolled back with it
    assert orders == expected_orders


def test_the_benchmark_runs_the_view_over_http(server_url: str, tmp_path: Path) -> None:
    """``benchmarks/sync_flask.py --quick`` against this session's server: it runs, makes
    no error and reports p50/p95/p99 for both scenarios (no timing is asserted)."""
    env = {**os.environ, "AWA_DATABASE_URL": server_url}
    result = subprocess.run(
        [sys.executable, str(BENCHMARK), "--quick", "--save", "--output-dir", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "errors: 0" in result.stdout, output[-4000:]
    payload = json.loads((tmp_path / "sync-flask-quick-latest.json").read_text())
    assert payload["results"]["errors"] == 0
    for scenario in ("flask_view", "direct"):
        figures = payload["results"][scenario]
        assert figures["n"] == 2 * 48, figures
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"], figures
