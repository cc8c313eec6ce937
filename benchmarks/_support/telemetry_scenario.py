"""The real events of ``benchmarks/telemetry_run.py``: each step makes awa's own code record
its instruments (nothing here calls an instrument), then waits until the in-process scrape
shows it. See that script's docstring for the list; ``Scenario.steps`` records how long
each took and what it observed.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread

import awa
from _support.prometheus_server import PrometheusServer, alert_rules, panel_queries
from _support.telemetry_probe import scrape
from awa.config import MaintenanceConfig
from awa.db import connect
from awa.events import WebhookSink
from awa.maintenance import HYGIENE, Branch, BranchContext, BranchResult
from awa.model import TERMINAL_STATES
from awa.telemetry import CATALOGUE, Instruments
from awa.telemetry.catalogue import OUTBOX_BACKLOG, spec

__all__ = ["Scenario", "prepare_database"]

#: Handlers block the event loop this long: past HEARTBEAT_STALENESS plus a rescue interval.
BLOCK_SECONDS = 4.0
HEARTBEAT_STALENESS = 2.0
#: Set on the scenario's database: a statement waiting this long for a lock fails.
LOCK_TIMEOUT = "250ms"
SLOW_INTERVAL = 0.05
OVERRUN_FAMILY = "awa_maintenance_branch_overrun_total"
OVERRUN = OVERRUN_FAMILY + '{branch="slow"}'


async def prepare_database(url: str) -> None:
    """``lock_timeout`` on the (throwaway) database, for every session opened after this:
    the setting under which a lock held by an operator's session fails awa's statements
    instead of queueing them (step 3)."""
    name = urlsplit(url).path.lstrip("/")
    conn = await connect(url)
    try:
        await conn.execute(f"ALTER DATABASE \"{name}\" SET lock_timeout = '{LOCK_TIMEOUT}'")
    finally:
        await conn.close()


class Slow(Branch):
    """A hygiene branch whose body turns slow (8 intervals) on request: one overrun
    episode, and ``delayed`` stays 1 while it stays slow."""

    name = "slow"
    lane = HYGIENE

    def __init__(self) -> None:
        super().__init__(interval=SLOW_INTERVAL)
        self.slow = False

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        if self.slow:
            await anyio.sleep(8 * SLOW_INTERVAL)
        return BranchResult({"slept": int(self.slow)})


class Failing(Branch):
    """A hygiene branch whose first two bodies raise (branch errors), then succeed."""

    name = "failing"
    lane = HYGIENE

    def __init__(self) -> None:
        super().__init__(interval=0.2)
        self.failures_left = 2

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("scripted branch failure")
        return BranchResult({})


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Scenario:
    """One runtime with a leader, the handlers and branches the steps need."""

    def __init__(
        self,
        url: str,
        metrics: Instruments,
        port: int,
        server: PrometheusServer | None,
        exported: Callable[[], dict[str, float]] | None = None,
    ) -> None:
        self.url = url
        #: What the OTLP receiver got so far (instrument -> peak): the run must not end
        #: before an export carried the final state (the leader's gauges clear at stop).
        self.exported = exported
        self.port = port
        self.server = server
        self.steps: list[dict[str, Any]] = []
        self.final_scrape: dict[str, float] = {}
        self.zero_seen_at: float | None = None
        self.prometheus_report: dict[str, Any] | None = None
        self.client = awa.Client(url, metrics=metrics)
        self.slow = Slow()
        self.gate_started = anyio.Event()
        self.gate_release = anyio.Event()
        self._handlers()
        self.client.schedule("beat", "* * * * * *", "ok")
        # Fires into a queue no runtime serves: never succeeds, so it is missed.
        self.client.schedule("stranded", "* * * * * *", "ok", queue="nowhere", miss_tolerance=1.0)

    def _handlers(self) -> None:
        client = self.client

        @client.handler("ok")
        async def ok(ctx: awa.JobContext) -> None:
            return None

        @client.handler("flaky")
        async def flaky(ctx: awa.JobContext) -> None:
            if ctx.job.attempt == 1:
                raise RuntimeError("first attempt fails")

        @client.handler("doomed")
        async def doomed(ctx: awa.JobContext) -> None:
            raise ValueError("always fails")

        @client.handler("gate")
        async def gate(ctx: awa.JobContext) -> None:
            self.gate_started.set()
            await self.gate_release.wait()

        @client.handler("hang")
        async def hang(ctx: awa.JobContext) -> None:
            if ctx.job.attempt == 1:
                # Deliberately blocking: the runtime's loop (heartbeats included) stops.
                time.sleep(BLOCK_SECONDS)  # noqa: ASYNC251

        @client.handler("held", queue="paused")
        async def held(ctx: awa.JobContext) -> None:
            return None

    # ------------------------------------------------------------------ plumbing

    async def scrape(self) -> dict[str, float]:
        return await anyio.to_thread.run_sync(scrape, self.port)

    async def until(
        self,
        what: str,
        done: Callable[[dict[str, float]], bool],
        timeout: float = 30.0,
        read: Callable[[], Awaitable[dict[str, float]]] | None = None,
    ) -> dict[str, float]:
        """Read (by default: scrape the Prometheus endpoint) until ``done`` holds; records
        the step (or that it timed out)."""
        read = read or self.scrape
        started = time.monotonic()
        samples: dict[str, float] = {}
        with anyio.move_on_after(timeout):
            while True:
                samples = await read()
                if done(samples):
                    break
                await anyio.sleep(0.1)
        ok = done(samples)
        self.steps.append({"step": what, "ok": ok, "seconds": time.monotonic() - started})
        print(f"step {what}: {'ok' if ok else 'TIMED OUT'}", file=sys.stderr, flush=True)
        return samples

    async def until_exported(self) -> None:
        """Until every instrument reached the OTLP receiver with data (one export a
        second): a gauge set last (``delayed``) must be exported while it holds."""
        exported = self.exported
        assert exported is not None

        async def peaks() -> dict[str, float]:
            return await anyio.to_thread.run_sync(exported)

        await self.until(
            "every instrument exported over OTLP",
            lambda p: all(p.get(s.name) for s in CATALOGUE),
            read=peaks,
        )

    async def finished(self, job_id: int, timeout: float = 60.0) -> str:
        with anyio.fail_after(timeout):
            while True:
                job = await self.client.get_job(job_id)
                if job.state in TERMINAL_STATES:
                    return str(job.state)
                await anyio.sleep(0.05)

    def prometheus_sees(self, expr: str, check: Callable[[float], bool]) -> Callable[[], bool]:
        server = self.server
        assert server is not None

        def probe() -> bool:
            return any(check(float(r["value"][1])) for r in server.query(expr))

        return probe

    async def until_prometheus(self, what: str, probe: Callable[[], bool]) -> None:
        started = time.monotonic()
        ok = False
        with anyio.move_on_after(60):
            while not ok:
                ok = await anyio.to_thread.run_sync(probe)
                if not ok:
                    await anyio.sleep(0.25)
        self.steps.append({"step": what, "ok": ok, "seconds": time.monotonic() - started})

    # ------------------------------------------------------------------ the run

    async def run(self) -> None:
        config = awa.RuntimeConfig(
            queues={"default": 4, "paused": 1},
            heartbeat_interval=0.25,
            poll_interval=0.5,
            backoff=awa.Backoff(base=0.05, cap=0.1, jitter=0.0),
        )
        maintenance = MaintenanceConfig(
            startup_jitter=0,
            election_interval=0.2,
            leader_check_interval=0.2,
            health_interval=0.5,
            heartbeat_staleness=HEARTBEAT_STALENESS,
            idle_stretch=False,
            intervals={"queue_stats": 0.5, "rescue_stale_heartbeats": 0.25},
        )
        down = WebhookSink("down", f"http://127.0.0.1:{_closed_port()}/", secret="telemetry")
        runtime = awa.Runtime(
            self.client,
            config,
            maintenance=maintenance,
            branches=[self.slow, Failing()],
            sinks=[down],
        )
        async with self.client, runtime:
            leader = runtime.leader
            assert leader is not None
            with anyio.fail_after(30):
                await leader.wait_until_leader()
            await self.until("slow branch series at 0", lambda s: OVERRUN_FAMILY in s)
            if self.server is not None:
                await self.until_prometheus(
                    "Prometheus stored the overrun series at 0",
                    self.prometheus_sees(OVERRUN, lambda v: v == 0),
                )
                self.zero_seen_at = time.time()
            for step in (self.jobs, self.paused_queue, self.lock_fault, self.blocked_loop):
                await step()
            await self.until(
                "cron fired and missed",
                lambda s: (
                    s.get("awa_cron_fired_total", 0) >= 1 and s.get("awa_cron_missed_total", 0) >= 1
                ),
            )
            self.slow.slow = True
            await self.until("first overrun", lambda s: s.get(OVERRUN_FAMILY, 0) >= 1)
            self.final_scrape = await self.until(
                "every instrument has data",
                lambda s: all(s.get(i.prometheus_name) for i in CATALOGUE),
            )
            if self.exported is not None:
                await self.until_exported()
            if self.server is not None:
                await self.until_prometheus(
                    "Prometheus stored the first overrun",
                    self.prometheus_sees(OVERRUN, lambda v: v >= 1),
                )
                await anyio.sleep(3)  # a few more scrapes of the final state
                # While the runtime still runs: once it stops, the leader's gauges are
                # cleared (a follower knows nothing) and Prometheus marks them stale.
                self.prometheus_report = await anyio.to_thread.run_sync(
                    evaluate_prometheus, self.server, self
                )
            self.final_scrape = await self.scrape()

    async def jobs(self) -> None:
        ids = [(await self.client.insert("ok", {"n": n})).id for n in range(5)]
        ids += [(await self.client.insert("flaky", {"n": n})).id for n in range(2)]
        ids.append((await self.client.insert("doomed", {}, max_attempts=1)).id)
        states = [await self.finished(i) for i in ids]
        self.steps.append({"step": "jobs", "ok": states.count("completed") == 7, "states": states})
        # The sink is down, so the jobs' events wait in the outbox; the gauge is refreshed
        # every backlog_interval (10 s), and the run must not end before it was.
        backlog = spec(OUTBOX_BACKLOG).prometheus_name
        await self.until("outbox backlog observed", lambda s: s.get(backlog, 0) > 0)

    async def paused_queue(self) -> None:
        await self.client.queues.pause("paused", "scripted telemetry run")
        for n in range(2):
            await self.client.insert("held", {"n": n})
        await self.until(
            "paused queue observed",
            lambda s: s.get("awa_queue_paused", 0) == 1 and s.get("awa_queue_lag_seconds", 0) > 0,
        )

    async def lock_fault(self) -> None:
        """An operator's session holds an exclusive lock on ``awa.jobs`` while a job runs
        and finishes: with ``lock_timeout`` in force the heartbeat and the flush fail (and
        retry), and the job completes once the lock is gone."""
        job = await self.client.insert("gate", {})
        with anyio.fail_after(30):
            await self.gate_started.wait()
        conn = await connect(self.url)
        try:
            await conn.execute("SET lock_timeout = 0")  # the operator's session waits
            async with conn.transaction():
                await conn.execute("LOCK TABLE awa.jobs IN ACCESS EXCLUSIVE MODE")
                await self.until(
                    "heartbeat fails on the lock",
                    lambda s: s.get("awa_runtime_loop_errors_total", 0) >= 1,
                    timeout=10,
                )
                self.gate_release.set()
                await self.until(
                    "flush fails on the lock",
                    lambda s: s.get("awa_flush_errors_total", 0) >= 1,
                    timeout=10,
                )
        finally:
            await conn.close()
        state = await self.finished(job.id)
        self.steps.append({"step": "gate job after the lock", "ok": state == "completed"})

    async def blocked_loop(self) -> None:
        """A handler blocks the loop: no heartbeat, the leader (on its own thread) rescues
        the attempt, the late completion is stale, the retry completes."""
        job = await self.client.insert("hang", {}, max_attempts=3)
        await self.until(
            "rescue, stale result, loop lag",
            lambda s: (
                s.get("awa_jobs_rescued_total", 0) >= 1
                and s.get("awa_jobs_stale_results_total", 0) >= 1
            ),
        )
        state = await self.finished(job.id)
        self.steps.append({"step": "rescued job retried", "ok": state == "completed"})


def evaluate_prometheus(server: PrometheusServer, scenario: Scenario) -> dict[str, Any]:
    """What the real Prometheus answers after the run: ``increase()`` over the first
    overrun episode, every dashboard panel query, every alert rule's health."""
    (latest,) = server.query(f"timestamp({OVERRUN})") or [{"value": [0, "nan"]}]
    last_sample = float(latest["value"][1])
    assert scenario.zero_seen_at is not None
    # A window reaching back past the first sample (the 0): increase() then extrapolates
    # nothing toward the start (a counter's first sample of 0 caps it), and evaluated at
    # the last sample's own timestamp nothing toward the end either, so it is exactly the
    # 0 → 1 step. Evaluated "now" instead, it may add up to 1.1 scrape intervals' worth.
    window = int(last_sample - scenario.zero_seen_at) + 30
    increase = server.query(f"increase({OVERRUN}[{window}s])", at=last_sample)
    now_increase = server.query(f"increase({OVERRUN}[{window}s])")
    panels = []
    for title, expr in panel_queries(f"{window}s"):
        result = server.query(expr)
        finite = [r for r in result if r["value"][1] not in ("NaN", "+Inf", "-Inf")]
        panels.append({"title": title, "expr": expr, "series": len(result), "finite": len(finite)})
    rules = []
    names = {name for name, _ in alert_rules()}
    for rule in server.rules():
        if rule.get("name") in names:
            rules.append(
                {"name": rule["name"], "health": rule.get("health"), "error": rule.get("lastError")}
            )
    return {
        "overrun_increase": float(increase[0]["value"][1]) if increase else None,
        "overrun_increase_now": float(now_increase[0]["value"][1]) if now_increase else None,
        "window_s": window,
        "panels": panels,
        "rules": rules,
        "rule_names": sorted(names),
    }
