"""One process of ``fleet.py``'s fleet: ``count`` default runtimes against one database.

Run as ``python -m _support.fleet_child URL COUNT`` from ``benchmarks/`` (so importing
``_support`` puts this checkout's ``src/`` first). Each runtime is what an application
starts: its own ``awa.Client`` (so its own pool, as separate services would have), one
handler on queue ``default``, a default ``awa.Runtime`` (worker and maintenance election
candidate). Nothing is ever queued.

Protocol on stdout, one line each:

- ``READY {"pid": ..., "runtimes": [instance_id, ...]}`` once every runtime has started;
- nothing else until SIGTERM, which stops the runtimes in reverse order and exits 0.

Runtimes start one after another rather than all at once: a process that starts 25 at
once makes 25 start-up recoveries and pool openings race on two cores, which measures the
stampede, not the fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys

import _support  # noqa: F401 - before awa: puts this checkout's src/ first on sys.path
import awa


def _client(url: str) -> awa.Client:
    client = awa.Client(url)

    @client.handler("noop")
    async def noop(ctx: awa.JobContext) -> None:
        return None

    return client


async def main(url: str, count: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        ids: list[str] = []
        for _ in range(count):
            client = await stack.enter_async_context(_client(url))
            runtime = await stack.enter_async_context(awa.Runtime(client))
            ids.append(runtime.instance_id)
        print("READY " + json.dumps({"pid": os.getpid(), "runtimes": ids}), flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
