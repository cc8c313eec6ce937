"""``awa demo``: a small application that shows jobs flowing through a worker.

Handlers simulate real work: image resizes that report progress, emails that fail now and
then (and are retried with backoff), reports scheduled a few seconds ahead. A producer
inserts a steady trickle; every second a line shows what happened.
"""

from __future__ import annotations

import argparse
import random
import time

import anyio

from awa.cli.args import Verbs, reporter
from awa.cli.output import emit
from awa.client import Client
from awa.config import RuntimeConfig
from awa.handlers import JobContext
from awa.runtime import Runtime

__all__ = ["add_parser", "build_demo_client", "run", "run_demo"]


def add_parser(sub: Verbs) -> None:
    demo = reporter(sub, "demo", "run a demo app: embedded PostgreSQL, a worker, jobs flowing")
    demo.add_argument("--duration", type=float, default=30.0, help="seconds; 0 runs until Ctrl-C")
    demo.add_argument("--rate", type=float, default=40.0, help="jobs per second to insert")


async def run(args: argparse.Namespace, url: str, embedded: bool) -> int:
    summary = await run_demo(url, duration=args.duration, rate=args.rate, as_json=args.json)
    emit(summary, as_json=args.json, text="demo finished")
    return 0


def build_demo_client(url: str) -> Client:
    client = Client(url)

    @client.handler("resize_image", queue="media", timeout=10)
    async def resize_image(ctx: JobContext) -> dict[str, int]:
        for step in range(1, 4):
            await anyio.sleep(random.uniform(0.005, 0.03))
            ctx.set_progress({"step": step, "of": 3})
        return {"width": 640, "height": 480}

    @client.handler("send_email", queue="default", timeout=5)
    async def send_email(ctx: JobContext) -> None:
        await anyio.sleep(random.uniform(0.001, 0.01))
        if random.random() < 0.2:
            raise ConnectionError("SMTP server said 421, try again later")

    @client.handler("daily_report", queue="default")
    async def daily_report(ctx: JobContext) -> str:
        return f"report for {ctx.args.get('day', 'today')}"

    return client


async def run_demo(url: str, *, duration: float, rate: float, as_json: bool) -> dict[str, int]:
    client = build_demo_client(url)
    await client.migrate()
    config = RuntimeConfig(queues={"default": 20, "media": 10}, heartbeat_interval=1.0)
    produced = 0
    async with client, Runtime(client, config) as runtime, anyio.create_task_group() as tg:

        async def produce() -> None:
            nonlocal produced
            while True:
                batch = [
                    client.params("send_email", {"to": f"user{produced + i}@example.com"})
                    for i in range(max(1, int(rate / 2)))
                ]
                batch.append(client.params("resize_image", {"image": f"img{produced}.png"}))
                if produced % 20 == 0:
                    batch.append(client.params("daily_report", {"day": "today"}, delay=3))
                await client.insert_many(batch)
                produced += len(batch)
                await anyio.sleep(0.5)

        tg.start_soon(produce)
        started = time.monotonic()
        summary: dict[str, int] = {}
        while duration <= 0 or time.monotonic() - started < duration:
            await anyio.sleep(1.0)
            summary = {"inserted": produced}
            for count in await client.queue_stats():
                summary[count.state] = summary.get(count.state, 0) + count.count
            if not as_json:
                elapsed = time.monotonic() - started
                print(
                    f"[{elapsed:5.1f}s] inserted={produced:6d} "
                    f"completed={summary.get('completed', 0):6d} "
                    f"running={summary.get('running', 0):3d} "
                    f"available={summary.get('available', 0):4d} "
                    f"retryable={summary.get('retryable', 0):4d} "
                    f"scheduled={summary.get('scheduled', 0):4d} "
                    f"failed={summary.get('failed', 0):3d} "
                    f"(this runtime claimed {sum(d.claimed for d in runtime.dispatchers)})",
                    flush=True,
                )
        tg.cancel_scope.cancel()
    return summary
