"""Running ``compare.py``'s adapter subprocesses and measuring around them.

Why subprocesses: the systems cannot share an interpreter (see ``systems.py``), so every
system runs the same scenario module through its adapter in its own process; this module
starts them, reads their event lines, counts completions from outside and meters the CPU
of the machine, of PostgreSQL and of the adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _support.compare.systems import System, clean_env, system_url
from _support.cpu import (
    cpu_busy_since,
    cpu_busy_snapshot,
    process_tree_cpu_seconds,
    server_cpu_seconds,
)
from _support.pg_stats import xact_count
from awa.db import connect

__all__ = ["Adapter", "LoadMeter", "run_crash", "run_idle", "run_simple"]

#: Where adapters run (so relative paths in them mean the same for every system).
_BENCH_DIR = Path(__file__).resolve().parents[2]


class Adapter:
    """One adapter subprocess: its stdout read line by line in the background."""

    def __init__(
        self, python: str, system: System, scenario: str, url: str, params: dict[str, Any]
    ) -> None:
        self.argv = [python, str(system.adapter), scenario, system_url(system, url)]
        self.argv.append(json.dumps(params))
        self.env = clean_env() if system.requirements else dict(os.environ)
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[tuple[float, str]] = []
        self._new = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._err: asyncio.Task[None] | None = None
        self._stderr = b""

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
            cwd=str(_BENCH_DIR),
        )
        self._reader = asyncio.create_task(self._read())
        self._err = asyncio.create_task(self._read_err())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append((time.monotonic(), line.decode(errors="replace").rstrip("\n")))
            self._new.set()

    async def _read_err(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        self._stderr = await self.proc.stderr.read()

    async def wait_line(self, prefix: str, timeout: float) -> tuple[float, str]:
        deadline = time.monotonic() + timeout
        while True:
            for at, line in self.lines:
                if line.startswith(prefix):
                    return at, line
            if (
                self.proc is not None
                and self.proc.returncode is not None
                and self._reader
                and self._reader.done()
            ):
                raise RuntimeError(f"{self.argv[1]} exited: {self.stderr_tail()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {prefix!r} from {self.argv[1]}: {self.stderr_tail()}")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), min(remaining, 0.5))

    async def result(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            await self.kill()
            raise TimeoutError(f"{self.argv[1:3]} took over {timeout:g} s") from None
        if self._reader is not None:
            await self._reader
        if self._err is not None:
            await self._err
        for _, line in reversed(self.lines):
            if line.startswith("RESULT "):
                return dict(json.loads(line[len("RESULT ") :]))
        raise RuntimeError(f"{self.argv[1:3]} gave no result: {self.stderr_tail()}")

    def sigkill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        for task in (self._reader, self._err):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def stderr_tail(self) -> str:
        return self._stderr.decode(errors="replace")[-1500:]


class LoadMeter:
    """Machine busy, PostgreSQL CPU and the adapter's CPU around one run: ``other_cores``
    is what neighbours used (noise)."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.busy0 = cpu_busy_snapshot()
        self.pg0 = server_cpu_seconds(self.server_pid)

    def stop(self, adapter_cpu_s: float | None) -> dict[str, Any]:
        wall = time.perf_counter() - self.t0
        busy = cpu_busy_since(self.busy0)
        pg1 = server_cpu_seconds(self.server_pid)
        pg = None if pg1 is None or self.pg0 is None else pg1 - self.pg0
        out: dict[str, Any] = {"wall_s": round(wall, 2), "machine_cpu_busy": busy}
        if pg is not None:
            out["postgres_cores"] = round(pg / wall, 2)
        if adapter_cpu_s is not None:
            out["client_cores"] = round(adapter_cpu_s / wall, 2)
        if busy is not None and pg is not None and adapter_cpu_s is not None:
            other = busy * (os.cpu_count() or 1) - (pg + adapter_cpu_s) / wall
            out["other_cores"] = round(max(0.0, other), 2)
        return out


async def _scalar(url: str, sql: str, timeout: float = 120.0) -> int | None:
    conn = await connect(url)
    try:
        return int(await asyncio.wait_for(conn.fetchval(sql), timeout))
    except TimeoutError:
        return None
    finally:
        await conn.close()


async def run_simple(
    python: str,
    system: System,
    scenario: str,
    url: str,
    params: dict[str, Any],
    server_pid: int | None,
) -> dict[str, Any]:
    meter = LoadMeter(server_pid)
    meter.start()
    adapter = Adapter(python, system, scenario, url, params)
    await adapter.start()
    try:
        result = await adapter.result(timeout=600)
    finally:
        await adapter.kill()
    result["load"] = meter.stop(result.get("process_cpu_s"))
    if scenario == "bulk_enqueue":
        result["queued_in_db"] = await _scalar(url, system.queued_sql)
        result["ok"] = result["queued_in_db"] == params["jobs"]
    elif scenario == "drain":
        # Cross-check the adapter's own count from outside.
        result["completed_checked"] = await _scalar(url, system.completed_sql)
    return result


async def run_crash(
    python: str, system: System, url: str, params: dict[str, Any], server_pid: int | None
) -> dict[str, Any]:
    """Leader first (serves an unused queue, so it leads maintenance and never takes the
    jobs); then the victim, which inserts ``jobs`` jobs and holds them in handlers that
    never return; then a survivor worker for the same kind. After ``phase`` seconds the
    victim is killed with SIGKILL; the figure is the time until all its jobs are completed
    in the database (by the survivor)."""
    n, phase, timeout = int(params["jobs"]), float(params["phase"]), float(params["timeout"])
    leader = Adapter(python, system, "crash_leader", url, {})
    victim = Adapter(python, system, "crash_victim", url, {"jobs": n})
    survivor = Adapter(python, system, "crash_survivor", url, {})
    meter = LoadMeter(server_pid)
    out: dict[str, Any] = {"jobs": n, "phase_s": phase, "timeout_s": timeout}
    conn = await connect(url)
    try:
        await leader.start()
        await leader.wait_line("READY", 120)
        await victim.start()
        _, held = await victim.wait_line("HELD ", 120)
        out["held"] = len(json.loads(held[len("HELD ") :]))
        await survivor.start()
        await survivor.wait_line("READY", 120)
        baseline = int(await conn.fetchval(system.completed_sql))
        await asyncio.sleep(phase)
        meter.start()
        victim.sigkill()
        killed = time.monotonic()
        done_at = None
        completed = 0
        while time.monotonic() - killed < timeout:
            completed = int(await conn.fetchval(system.completed_sql)) - baseline
            if completed >= n:
                done_at = time.monotonic() - killed
                break
            await asyncio.sleep(0.05)
        reruns = [at for at, line in survivor.lines if line.startswith("RAN ")]
        out.update(
            {
                "completed": completed,
                "rescue_s": None if done_at is None else round(done_at, 3),
                "first_rerun_s": round(min(reruns) - killed, 3) if reruns else None,
                "last_rerun_s": round(max(reruns) - killed, 3) if reruns else None,
                "reruns": len(reruns),
                "load": meter.stop(None),
                "ok": done_at is not None and out["held"] == n,
            }
        )
    finally:
        await conn.close()
        for a in (victim, survivor, leader):
            await a.kill()
    return out


async def run_idle(
    python: str,
    system: System,
    server_url: str,
    url: str,
    params: dict[str, Any],
    server_pid: int | None,
) -> dict[str, Any]:
    """What an idle worker costs PostgreSQL: transactions per second of its database
    (``pg_stat_database``, read from the server's maintenance database), with one worker
    that has a handler and nothing to do, minus the same window with the schema installed
    and no client at all. The schema is installed by a process that exits first (its
    counters flush on exit); the worker gets ``settle`` seconds before its window, as in
    ``lanes.py``'s idle scenario, so its start-up transactions are not counted late."""
    window, settle = float(params["window"]), float(params["settle"])
    dbname = urlsplit(url).path.lstrip("/")
    installer = Adapter(python, system, "install", url, {})
    await installer.start()
    try:
        await installer.result(timeout=300)
    finally:
        await installer.kill()
    admin = await connect(server_url)
    worker = Adapter(python, system, "idle_worker", url, {})
    try:
        await asyncio.sleep(1.0)
        b0, tb0 = await xact_count(admin, dbname), time.perf_counter()
        await asyncio.sleep(window)
        b1, tb1 = await xact_count(admin, dbname), time.perf_counter()
        await worker.start()
        await worker.wait_line("READY", 120)
        await asyncio.sleep(settle)
        assert worker.proc is not None
        meter = LoadMeter(server_pid)
        meter.start()
        cpu0 = process_tree_cpu_seconds(worker.proc.pid)
        r0, t0 = await xact_count(admin, dbname), time.perf_counter()
        await asyncio.sleep(window)
        r1, t1 = await xact_count(admin, dbname), time.perf_counter()
        cpu1 = process_tree_cpu_seconds(worker.proc.pid)
        alive = worker.proc.returncode is None
    finally:
        await worker.kill()
        await admin.close()
    background = (b1 - b0) / (tb1 - tb0)
    raw = (r1 - r0) / (t1 - t0)
    adapter_cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    return {
        "window_s": round(t1 - t0, 2),
        "settle_s": settle,
        "background_tx_per_s": round(background, 3),
        "worker_xacts": r1 - r0,
        "raw_tx_per_s": round(raw, 3),
        "net_tx_per_s": round(raw - background, 3),
        "load": meter.stop(adapter_cpu),
        "ok": alive,
    }
