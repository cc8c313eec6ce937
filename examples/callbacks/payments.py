"""A job that waits for an external system: the handler asks a payment provider to charge,
parks its job on a callback (no worker slot held while it waits), and the provider's answer
resumes it.

Run it: ``python payments.py`` (with no ``AWA_DATABASE_URL`` it starts a private
PostgreSQL through ``awa.embedded()``). The provider here is a stand-in in the same process;
a real one calls back over HTTP: ``awa callbacks serve`` (or ``awa.web.ingress.callback_app``
mounted in your ASGI app) resolves a callback from ``POST /<callback id>`` with the token
as a bearer credential.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from typing import Any

import awa

client = awa.Client()  # AWA_DATABASE_URL, or set_database_url below


class PaymentProvider:
    """Stands in for a remote payment API: it takes a charge request with the callback to
    answer, and answers later, from elsewhere."""

    def __init__(self) -> None:
        self.requests: asyncio.Queue[tuple[str, str, Any]] = asyncio.Queue()

    async def start_payment(self, args: Any, *, callback_id: str, token: str) -> None:
        await self.requests.put((callback_id, token, args))


provider = PaymentProvider()
charged = asyncio.Event()


@client.handler("charge", queue="payments")
async def charge(ctx: awa.JobContext) -> object:
    if ctx.callback is not None:  # resumed (resume=True)
        charged.set()  # lets the script's main() finish
        return {"order": ctx.args["order"], "payment": ctx.callback.payload}
    cb = await ctx.register_callback(timeout=3600, resume=True)
    await provider.start_payment(ctx.args, callback_id=cb.id, token=cb.token)
    return awa.WaitForCallback(cb)  # parks the job: no worker slot held


client.dlq.declare("payments", retention=timedelta(days=30))  # failed charges stay for review


async def answer_one_charge() -> None:
    """The provider's side: charge, then resolve the callback with the outcome (or
    ``client.callbacks.fail`` / ``retry`` / ``heartbeat``)."""
    callback_id, token, args = await provider.requests.get()
    payment = {"paid": args["amount"], "reference": f"pay-{args['order']}"}
    await client.callbacks.complete(callback_id, token, payment)


async def main() -> None:
    await client.migrate()
    async with client:
        async with awa.Runtime(client, awa.RuntimeConfig(queues={"payments": 4})):
            job = await client.insert("charge", {"order": 42, "amount": 1999})
            await answer_one_charge()
            await charged.wait()
        job = await client.get_job(job.id)  # leaving the runtime flushed its completion
    print(f"job {job.id} {job.state.value}: {job.result}")


if __name__ == "__main__":
    if os.environ.get("AWA_DATABASE_URL"):
        asyncio.run(main())
    else:
        with awa.embedded() as url:  # a private PostgreSQL in ./.awa/pgdata
            client.set_database_url(url)
            asyncio.run(main())
