import asyncio
import dataclasses
import os

import pydantic

import awa

client = awa.Client()
ran: list[str] = []
both_ran = asyncio.Event()


@dataclasses.dataclass
class Welcome:  # a dataclass: nested dataclasses are rebuilt too
    email: str
    name: str = "there"


class Charge(pydantic.BaseModel):  # a pydantic v2 model: validated by the model itself
    order: int
    cents: int = pydantic.Field(gt=0)


@client.handler("welcome", args=Welcome)
async def welcome(ctx: awa.JobContext[Welcome]) -> str:
    ran.append(ctx.job.kind)
    if len(ran) == 2:
        both_ran.set()
    return f"Hello {ctx.args.name} <{ctx.args.email}>"  # ctx.args is a Welcome


@client.handler("charge", args=Charge)
async def charge(ctx: awa.JobContext[Charge]) -> int:
    ran.append(ctx.job.kind)
    if len(ran) == 2:
        both_ran.set()
    return ctx.args.cents  # ctx.args is a Charge


async def main() -> None:
    await client.migrate()
    async with client:
        await client.insert("welcome", Welcome("ada@example.com", "Ada"))
        await client.insert("charge", Charge(order=7, cents=1250), priority=1)
        try:
            await client.insert("charge", {"order": 8, "cents": -1})  # checked before SQL
        except awa.ValidationError as exc:
            print(f"refused: {exc.field}")
        async with awa.Runtime(client, awa.RuntimeConfig(queues={"default": 4})):
            await both_ran.wait()
        jobs = await client.list_jobs(state="completed")
    print(sorted(str(job.result) for job in jobs))


if __name__ == "__main__":
    if os.environ.get("AWA_DATABASE_URL"):
        asyncio.run(main())
    else:
        with awa.embedded() as url:
            client.set_database_url(url)
            asyncio.run(main())
