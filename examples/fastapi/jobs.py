"""The shop's awa client and its handlers: one module that both sides import.

The API (``api.py``) inserts through this client; the worker runs its handlers. Both read
the database URL from ``AWA_DATABASE_URL``. From this folder:

    awa migrate
    awa worker --app jobs:client --queue orders=10
    uvicorn api:app

The handlers are declared here, not in the API, so a job inserted by the API gets its
handler's queue and timeout without the API repeating them.
"""

from __future__ import annotations

import awa

client = awa.Client()  # AWA_DATABASE_URL; one pool per process, opened by whoever runs it


@client.handler("confirm_order", queue="orders", timeout=30)
async def confirm_order(ctx: awa.JobContext) -> dict[str, object]:
    # Charge, reserve stock, mail the customer...; raise to retry with backoff.
    return {"confirmed": ctx.args["order_id"]}


@client.handler("send_receipt", queue="orders", timeout=30)
async def send_receipt(ctx: awa.JobContext) -> dict[str, object]:
    return {"sent_to": ctx.args["email"]}
