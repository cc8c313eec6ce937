"""A chaos worker: a real awa runtime in a process of its own, for the chaos suite to kill.

    PYTHONPATH=tests python -m support.chaos_worker URL [--queue NAME=N ...] [--no-maintenance]

It runs the ``chaos`` handler of ``support.chaos`` (record the invocation in the side table,
sleep, return) with fast maintenance settings, and runs until it is killed: the suite ends it
with SIGKILL, which is the point.
"""

from __future__ import annotations

import argparse
import logging
import sys

import anyio

import awa
from support.chaos import Probe, fast_maintenance, register_chaos_handler, runtime_config


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--queue", action="append", default=[], metavar="NAME=N")
    parser.add_argument("--no-maintenance", action="store_true")
    return parser.parse_args(argv)


async def main(argv: list[str]) -> None:
    options = parse(argv)
    queues = {}
    for item in options.queue or ["chaos=8"]:
        name, _, limit = item.partition("=")
        queues[name] = int(limit)
    client = awa.Client(options.url)
    async with Probe(options.url) as probe:
        register_chaos_handler(client, probe)
        async with client:
            runtime = awa.Runtime(
                client,
                runtime_config(queues),
                maintenance=fast_maintenance(),
                run_maintenance=not options.no_maintenance,
            )
            async with runtime:
                await anyio.sleep_forever()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    anyio.run(main, sys.argv[1:])
