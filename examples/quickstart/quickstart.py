import asyncio
import os

import asyncpg

import awa

client = awa.Client()  # the URL comes from AWA_DATABASE_URL, or later from set_database_url
sent: list[str] = []
all_sent = asyncio.Event()


@client.handler("send_email", queue="mail", timeout=30)
async def send_email(ctx: awa.JobContext) -> None:
    ctx.set_progress({"step": "rendering"})  # written with the next heartbeat
    print(f"sending to {ctx.args['to']} (attempt {ctx.job.attempt})")
    sent.append(ctx.args["to"])
    if len(sent) == 4:
        all_sent.set()
    # raise to retry with backoff, or return awa.Snooze(60) | awa.RetryAfter(10) | awa.Cancel("why")


async def main() -> None:
    await client.migrate()  # idempotent, safe to race; works before the client connects
    async with client:
        await client.insert("send_email", {"to": "a@example.com"}, priority=1)
        await client.insert("send_email", {"to": "b@example.com"}, delay=60, unique_key="b")
        targets = ["c@example.com", "d@example.com"]
        await client.insert_batch("send_email", [{"to": t} for t in targets])  # one COPY

        conn = await asyncpg.connect(client.database_url)  # your own connection
        try:
            async with conn.transaction():  # the job exists only if this commits
                await client.insert("send_email", {"to": "e@example.com"}, conn=conn)
        finally:
            await conn.close()

        # Workers for queue "mail" plus the maintenance leader, until four jobs ran; leaving
        # the block shuts the runtime down gracefully (completions are flushed first).
        async with awa.Runtime(client, awa.RuntimeConfig(queues={"mail": 20})):
            await all_sent.wait()
        done = await client.list_jobs(state="completed", queue="mail")
    print(f"done: {len(done)} sent, 1 scheduled for a minute from now")


if __name__ == "__main__":
    if os.environ.get("AWA_DATABASE_URL"):
        asyncio.run(main())
    else:
        with awa.embedded() as url:  # a private PostgreSQL in ./.awa/pgdata
            client.set_database_url(url)
            asyncio.run(main())
