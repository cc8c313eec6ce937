"""``awa demo``: a small application that shows jobs flowing through a worker.

Handlers simulate real work: image resizes that report progress, emails that fail now and
then (and are retried with backoff), reports scheduled a few seconds ahead. A producer
inserts a steady trickle; every second a line shows what happened.

Every figure has one scope, and says it. The database may hold jobs of earlier runs (the
embedded data directory is reused), so counting it whole would mix them in:

- ``this_run``: the jobs this demo inserted, tracked by the ids ``insert_many`` returned,
  counted per state (every state, zeros included) with one query over those ids
  (``admin.jobs.state_counts``). ``not_found`` is the ids no longer stored (finished jobs
  whose history partition was rotated away in a long run).
- ``this_worker``: what the demo's own worker claimed; it serves the queues, so that
  includes jobs an earlier run left behind.

The first SIGINT or SIGTERM (``awa.cli.signals`` owns them; ``serving.until_signal`` waits
for one) ends the run like ``--duration`` does: the producer finishes the insert it is in,
the worker shuts down gracefully, and the summary is printed, with ``--json`` too, marked
``"interrupted": true``. The verb returns 0, as ``awa worker`` does on a signal; a second
signal cancels it outright (``awa.cli.main``).
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

import anyio

from awa.admin import Admin
from awa.cli.args import Verbs, reporter, seconds_arg
from awa.cli.output import emit
from awa.cli.serving import until_signal
from awa.client import Client
from awa.config import RuntimeConfig
from awa.handlers import JobContext
from awa.model import JobState
from awa.runtime import Runtime

__all__ = ["DemoReport", "add_parser", "build_demo_client", "run", "run_demo"]

#: Jobs per second the producer may be asked for: each half-second batch is built in memory.
MAX_RATE = 10_000.0


def _rate(text: str) -> float:
    """``--rate``: finite, above 0 and at most ``MAX_RATE`` (``int(nan)`` would raise deep in
    the producer; a huge rate would build a batch that does not fit in memory)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid rate {text!r}") from None
    if not math.isfinite(value) or not 0 < value <= MAX_RATE:
        raise argparse.ArgumentTypeError(
            f"rate must be above 0 and at most {MAX_RATE:g} jobs per second, got {text!r}"
        )
    return value


def add_parser(sub: Verbs) -> None:
    demo = reporter(sub, "demo", "run a demo app: embedded PostgreSQL, a worker, jobs flowing")
    demo.add_argument(
        "--duration", type=seconds_arg, default=30.0, help="seconds; 0 runs until Ctrl-C"
    )
    demo.add_argument(
        "--rate", type=_rate, default=40.0, help=f"jobs per second to insert (at most {MAX_RATE:g})"
    )


@dataclass
class DemoReport:
    """What one run did; every figure in the scope its name says (module docstring)."""

    ids: list[int] = field(default_factory=list)
    states: dict[JobState, int] = field(default_factory=lambda: dict.fromkeys(JobState, 0))
    worker_claims: int = 0
    elapsed_s: float = 0.0
    signal: str | None = None

    @property
    def not_found(self) -> int:
        return len(self.ids) - sum(self.states.values())

    def summary(self) -> dict[str, Any]:
        return {
            "this_run": {
                "inserted": len(self.ids),
                "states": {state.value: n for state, n in self.states.items()},
                "not_found": self.not_found,
            },
            "this_worker": {"claims": self.worker_claims},
            "elapsed_s": round(self.elapsed_s, 1),
            "interrupted": self.signal is not None,
            "signal": self.signal,
        }

    def line(self) -> str:
        """One progress line: this run's figures, then the worker's (labelled)."""
        states = " ".join(f"{state.value}={n}" for state, n in self.states.items())
        gone = f" not_found={self.not_found}" if self.not_found else ""
        return (
            f"[{self.elapsed_s:5.1f}s] this run: inserted={len(self.ids)} {states}{gone}"
            f" | worker claims={self.worker_claims} (attempts, on jobs of any run)"
        )

    def closing(self) -> str:
        how = f"interrupted by {self.signal}" if self.signal else "finished"
        return f"demo {how}\n{self.line()}"


async def run(args: argparse.Namespace, url: str, embedded: bool) -> int:
    # With --json, stdout carries the summary alone; progress goes to stderr.
    progress = sys.stderr if args.json else sys.stdout
    # The demo's handler fails a fifth of its attempts on purpose: logging each retried one
    # with its traceback (ADR 025) would bury the progress lines. Final failures still show.
    failures = logging.getLogger("awa.worker.failures")
    level = failures.level
    failures.setLevel(logging.ERROR)
    try:  # restored: the CLI may run in-process (tests, python -m awa from a script)
        report = await run_demo(url, duration=args.duration, rate=args.rate, progress=progress)
    finally:
        failures.setLevel(level)
    emit(report.summary(), as_json=args.json, text=report.closing())
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


async def run_demo(
    url: str, *, duration: float, rate: float, progress: TextIO | None = None
) -> DemoReport:
    """Run the demo for ``duration`` seconds (0: until a signal) and return its report;
    a progress line goes to ``progress`` every second."""
    report = DemoReport()
    stopping = anyio.Event()  # a signal, or the duration is over
    async with anyio.create_task_group() as tg:

        async def on_signal() -> None:
            signum = await until_signal()
            report.signal = signal.Signals(signum).name if signum is not None else "stop"
            stopping.set()

        tg.start_soon(on_signal)
        await _run(url, duration, rate, progress, report, stopping)
        tg.cancel_scope.cancel()
    return report


async def _run(
    url: str,
    duration: float,
    rate: float,
    progress: TextIO | None,
    report: DemoReport,
    stopping: anyio.Event,
) -> None:
    started = time.monotonic()
    deadline = started + duration if duration > 0 else None
    client = build_demo_client(url)
    await client.migrate()
    config = RuntimeConfig(queues={"default": 20, "media": 10}, heartbeat_interval=1.0)
    async with client:
        admin = Admin.of(client)
        if not stopping.is_set():  # not interrupted while migrating
            runtime = Runtime(client, config)
            async with runtime, anyio.create_task_group() as tg:
                tg.start_soon(_produce, client, rate, report, stopping)
                while not stopping.is_set():
                    now = time.monotonic()
                    with anyio.move_on_after(1.0 if deadline is None else min(1.0, deadline - now)):
                        await stopping.wait()
                    if deadline is not None and time.monotonic() >= deadline:
                        stopping.set()  # the producer ends after the insert it is in
                    if stopping.is_set():
                        break  # the closing summary has the final figures
                    report.states = await admin.jobs.state_counts(report.ids)
                    report.worker_claims = sum(d.claimed for d in runtime.dispatchers)
                    report.elapsed_s = time.monotonic() - started
                    if progress is not None:
                        print(report.line(), file=progress, flush=True)
            # The worker has shut down gracefully: what it held has finished or gone back.
            report.worker_claims = sum(d.claimed for d in runtime.dispatchers)
        report.states = await admin.jobs.state_counts(report.ids)
    report.elapsed_s = time.monotonic() - started


async def _produce(client: Client, rate: float, report: DemoReport, stopping: anyio.Event) -> None:
    """Insert a batch every half second until ``stopping``. Never cancelled mid-insert
    (the run waits for it), so ``report.ids`` is exactly what this run inserted."""
    batches = 0
    while not stopping.is_set():
        produced = len(report.ids)
        batch = [
            client.params("send_email", {"to": f"user{produced + i}@example.com"})
            for i in range(max(1, int(rate / 2)))
        ]
        batch.append(client.params("resize_image", {"image": f"img{produced}.png"}))
        if batches % 20 == 0:  # one report every ten seconds, due three seconds later
            batch.append(client.params("daily_report", {"day": "today"}, delay=3))
        batches += 1
        report.ids.extend(await client.insert_many(batch))
        with anyio.move_on_after(0.5):
            await stopping.wait()
