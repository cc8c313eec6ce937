"""A Flask view inserting through one ``awa.SyncClient`` under a real threaded WSGI server
(werkzeug, one thread per request), 8 clients at once: no error, every job in the database.

The first request of each client waits in its view at a barrier of 8 before inserting, so
at least 8 views call the SyncClient at the same moment: a server or client that
serialised requests would break the barrier and fail the test rather than pass slowly.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import flask

import awa
from support.wsgi import serving

CLIENTS = 8
REQUESTS_PER_CLIENT = 25


def make_app(sync: awa.SyncClient, gate: threading.Barrier) -> flask.Flask:
    app = flask.Flask("awa_sync_test")

    @app.post("/signup")
    def signup() -> tuple[dict[str, Any], int]:
        body = flask.request.get_json()
        if flask.request.args.get("gate"):
            gate.wait(timeout=30)  # all 8 views are inside a request at once
        job = sync.insert("send_email", {"to": body["email"]}, queue="mail")
        return {"job_id": job.id}, 201

    return app


def post(port: int, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def stored_jobs(url: str) -> dict[int, Any]:
    async def read() -> dict[int, Any]:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch("SELECT id, args, queue FROM awa.all_jobs")
            return {int(r["id"]): (json.loads(r["args"]), r["queue"]) for r in rows}
        finally:
            await conn.close()

    return asyncio.run(read())


def test_a_flask_view_inserts_from_eight_threads(database_url: str) -> None:
    gate = threading.Barrier(CLIENTS)
    with awa.SyncClient(database_url) as sync, serving(make_app(sync, gate)) as server:
        port = server.server_port

        def client(n: int) -> list[tuple[int, dict[str, Any], str]]:
            out = []
            for i in range(REQUESTS_PER_CLIENT):
                email = f"user{n}-{i}@example.com"
                path = "/signup?gate=1" if i == 0 else "/signup"
                status, body = post(port, path, {"email": email})
                out.append((status, body, email))
            return out

        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = [a for batch in pool.map(client, range(CLIENTS)) for a in batch]

    errors = [(status, body) for status, body, _ in answers if status != 201]
    assert errors == []
    assert len(answers) == CLIENTS * REQUESTS_PER_CLIENT
    expected = {body["job_id"]: ({"to": email}, "mail") for _, body, email in answers}
    assert len(expected) == len(answers)  # one job per request, none shared
    assert stored_jobs(database_url) == expected
