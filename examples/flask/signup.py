"""A Flask producer: views insert jobs through one module-level ``awa.SyncClient``.

Flask views are blocking code, called from many threads at once; the ``SyncClient`` keeps
one pool on a loop thread of its own and carries each call over to it (ADR 023). From this
folder: ``python signup.py`` (a threaded development server, ``AWA_DATABASE_URL`` set), and
the worker for the jobs it inserts is ``awa worker --app signup:client --queue mail=10``.
"""

from __future__ import annotations

import atexit
from typing import Any

import flask

import awa

client = awa.Client()  # AWA_DATABASE_URL; the handlers below give inserts their queue
sync = awa.SyncClient(client=client)  # one pool on a background loop; thread-safe
atexit.register(sync.close)  # closed at exit: calls in flight finish, then the pool closes

app = flask.Flask(__name__)


@client.handler("send_email", queue="mail", timeout=30)
async def send_email(ctx: awa.JobContext) -> None:
    print(f"mailing {ctx.args['to']}")  # runs in the worker, not in the web process


@app.post("/signup")  # any WSGI view, from any number of threads
def signup() -> tuple[dict[str, Any], int]:
    email = flask.request.get_json()["email"]
    job = sync.insert("send_email", {"to": email}, priority=1)
    return {"job_id": job.id}, 201


@app.post("/orders")
def place_order() -> tuple[dict[str, Any], int]:
    email = flask.request.get_json()["email"]
    with sync.transaction() as tx:  # your statements and the job, one transaction
        order_id = tx.fetchval("INSERT INTO flask_orders (email) VALUES ($1) RETURNING id", email)
        job = tx.insert("send_email", {"to": email, "order": order_id})
        if "@" not in email:
            flask.abort(422)  # raising inside the block rolls back the order and the job
    return {"order_id": order_id, "job_id": job.id}, 201


def prepare_database() -> None:
    """The schema awa needs, and the application's own table."""
    sync.migrate()
    with sync.transaction() as tx:
        tx.execute("CREATE TABLE IF NOT EXISTS flask_orders (id bigserial PRIMARY KEY, email text)")


if __name__ == "__main__":
    prepare_database()
    app.run(threaded=True)
