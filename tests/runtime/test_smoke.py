import anyio

import awa


async def test_runtime_runs_jobs_end_to_end(database_url: str) -> None:
    client = awa.Client(database_url)
    seen: list[int] = []
    done = anyio.Event()

    @client.handler("add")
    async def add(ctx: awa.JobContext) -> int:
        seen.append(ctx.args["n"])
        if len(seen) == 50:
            done.set()
        return int(ctx.args["n"]) * 2

    async with client:
        await client.insert_many([client.params("add", {"n": i}) for i in range(49)])
        async with awa.Runtime(client, awa.RuntimeConfig(queues={"default": 10})):
            await client.insert("add", {"n": 49})
            with anyio.fail_after(10):
                await done.wait()
        jobs = await client.list_jobs(state="completed", limit=100)
        assert len(jobs) == 50
        assert sorted(seen) == list(range(50))
