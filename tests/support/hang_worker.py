"""A worker whose handler never returns, for tests that SIGKILL it while it holds jobs.

    PYTHONPATH=tests python -m support.hang_worker URL

It runs a default ``awa.Runtime`` (worker and election candidate, fast elections) for kind
``hang`` on queue ``default`` and prints its instance id once started.
"""

from __future__ import annotations

import sys

import anyio

import awa
from awa.config import MaintenanceConfig


async def main(url: str) -> None:
    client = awa.Client(url)

    @client.handler("hang")
    async def hang(ctx: awa.JobContext) -> None:
        await anyio.sleep_forever()

    maintenance = MaintenanceConfig(
        startup_jitter=0, election_interval=0.2, leader_check_interval=0.2
    )
    async with client:
        runtime = awa.Runtime(
            client, awa.RuntimeConfig(queues={"default": 10}), maintenance=maintenance
        )
        async with runtime:
            print(runtime.instance_id, flush=True)
            await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
