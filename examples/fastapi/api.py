"""A FastAPI producer: endpoints that insert jobs and one that reads a job's state.

Run it from this folder with ``uvicorn api:app`` (``AWA_DATABASE_URL`` set, the schema
migrated); the worker is ``awa worker --app jobs:client --queue orders=10`` (``jobs.py``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException
from jobs import client
from pydantic import BaseModel

import awa
from awa.web import console_app

pools: dict[str, asyncpg.Pool] = {}  # the application's own pool, for its own tables


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # awa's pool and the application's own, both opened at startup and closed at shutdown
    async with client, asyncpg.create_pool(client.database_url, min_size=1, max_size=5) as pool:
        await pool.execute(
            "CREATE TABLE IF NOT EXISTS shop_orders (id bigserial PRIMARY KEY, email text)"
        )
        pools["app"] = pool
        yield
        del pools["app"]
    await console.state.close()  # a mounted app gets no lifespan of its own


console = console_app(client.database_url, token=os.environ.get("AWA_CONSOLE_TOKEN"))
app = FastAPI(lifespan=lifespan)
app.mount("/ops", console)  # the operator console; read-only until an operator logs in


class Order(BaseModel):
    email: str


@app.post("/orders", status_code=201)
async def place_order(order: Order) -> dict[str, int]:
    async with pools["app"].acquire() as conn, conn.transaction():  # the request's transaction
        order_id: int = await conn.fetchval(
            "INSERT INTO shop_orders (email) VALUES ($1) RETURNING id", order.email
        )
        job = await client.insert("confirm_order", {"order_id": order_id}, conn=conn)
        if not order.email.partition("@")[2]:
            # Raising inside the block rolls back the order and the job: neither exists.
            raise HTTPException(422, "the e-mail address has no domain")
    return {"order_id": order_id, "job_id": job.id}


@app.post("/orders/{order_id}/receipt", status_code=202)
async def resend_receipt(order_id: int, order: Order) -> dict[str, int]:
    job = await client.insert(
        "send_receipt", {"order_id": order_id, "email": order.email}, priority=1
    )
    return {"job_id": job.id}


@app.get("/jobs/{job_id}")
async def job_status(job_id: int) -> dict[str, Any]:
    try:
        job = await client.get_job(job_id)
    except awa.JobNotFound:
        raise HTTPException(404, f"no job {job_id}") from None
    return {"id": job.id, "kind": job.kind, "state": job.state.value, "result": job.result}
