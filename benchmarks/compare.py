"""Side-by-side comparison of this project with Awa 0.6.9 (a script, not a test).

Why this shape: Awa 0.6.9 ships as ``awa-pg`` and also imports as ``awa``, so it can never be
installed next to this project. It lives in its own virtual environment (default
``.awa/venv-awa-pg``, created here with ``pip install awa-pg==0.6.9`` when missing) and both
systems are driven the same way: as subprocesses running one shared scenario module
(``_support/compare/scenarios.py``) through a per-system adapter (``project.py``,
``awa069.py`` beside it). Each run gets a fresh, empty database of the same embedded
PostgreSQL; each system migrates it itself (untimed) and runs with its documented defaults.

Scenarios: bulk enqueue (jobs/s), drain of 20,000 no-op jobs (completed jobs/s), pickup
latency at a steady insert rate (p50/p99), promotion lateness of scheduled jobs
(p50/p99/max), crash rescue (kill -9 of a worker holding jobs; seconds until another worker
completed them). Prints a table with ratios and the aims of issue 8, writes JSON to
``benchmarks/results/compare-*.json``. ``--quick`` is a smaller smoke run without the crash
scenario (Awa's documented rescue waits ~90 s for a stale heartbeat).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import _support  # noqa: F401 - before awa: puts this checkout's src/ first on sys.path
from _support import REPO_ROOT
from _support.cli import add_output_args
from _support.cpu import cpu_busy_since, cpu_busy_snapshot, server_cpu_seconds
from _support.machine import describe_machine, machine_info
from _support.results import run_and_report
from _support.server import BenchServer, fresh_database
from awa.db import connect

log = logging.getLogger("awa.bench.compare")

AWA_PG_VERSION = "0.6.9"
BENCH_DIR = Path(__file__).resolve().parent
SYSTEMS = ("project", "awa069")
LABELS = {"project": "awa (this project)", "awa069": f"Awa {AWA_PG_VERSION}"}
ADAPTERS = {
    "project": BENCH_DIR / "_support" / "compare" / "project.py",
    "awa069": BENCH_DIR / "_support" / "compare" / "awa069.py",
}
SCENARIOS = ("bulk_enqueue", "drain", "pickup", "promotion", "crash")

#: How each system's completed jobs are counted from outside (see the adapters' docstrings).
COMPLETED_SQL = {
    "project": "SELECT count(*) FROM awa.jobs_done WHERE state = 'completed'",
    "awa069": """
        SELECT ((SELECT coalesce(sum(completed_count), 0) FROM awa.receipt_completion_batches)
              + (SELECT count(*) FROM awa.done_entries WHERE state = 'completed'))::bigint""",
}
#: Jobs still queued after a bulk enqueue (Awa: its public ``awa.jobs`` view; all available).
QUEUED_SQL = {
    "project": "SELECT count(*) FROM awa.jobs",
    "awa069": "SELECT count(*) FROM awa.jobs WHERE state = 'available'",
}


# ----------------------------------------------------------------- Awa's environment


def ensure_awa_venv(venv: Path) -> Path:
    """The Python of Awa 0.6.9's own virtual environment, created if missing. Never the
    project's environment: both packages import as ``awa``."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"... creating {venv} with awa-pg=={AWA_PG_VERSION}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"awa-pg=={AWA_PG_VERSION}"],
            check=True,
            env=_clean_env(),
        )
    return python


def _clean_env() -> dict[str, str]:
    """No PYTHONPATH (it might point at this project's src/), no user site-packages."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def system_url(system: str, url: str) -> str:
    """Awa's Rust driver wants a host in the URL; the embedded server's URL has only
    ``?host=<socket dir>``, so give it ``localhost`` (the query's host still wins)."""
    if system != "awa069":
        return url
    parts = urlsplit(url)
    if parts.hostname:
        return url
    user = parts.username or "postgres"
    return parts._replace(netloc=f"{user}@localhost").geturl()


# ------------------------------------------------------------------------ processes


class Adapter:
    """One adapter subprocess: its stdout read line by line in the background."""

    def __init__(self, python: str, system: str, scenario: str, url: str, params: dict[str, Any]):
        self.argv = [python, str(ADAPTERS[system]), scenario, system_url(system, url)]
        self.argv.append(json.dumps(params))
        self.env = _clean_env() if system == "awa069" else dict(os.environ)
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
            cwd=str(BENCH_DIR),
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


# ------------------------------------------------------------------------ scenarios


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
    system: str,
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
        result["queued_in_db"] = await _scalar(url, QUEUED_SQL[system])
        result["ok"] = result["queued_in_db"] == params["jobs"]
    elif scenario == "drain":
        # Cross-check the adapter's own count from outside.
        result["completed_checked"] = await _scalar(url, COMPLETED_SQL[system])
    return result


async def run_crash(
    python: str, system: str, url: str, params: dict[str, Any], server_pid: int | None
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
        baseline = int(await conn.fetchval(COMPLETED_SQL[system]))
        await asyncio.sleep(phase)
        meter.start()
        victim.sigkill()
        killed = time.monotonic()
        done_at = None
        completed = 0
        while time.monotonic() - killed < timeout:
            completed = int(await conn.fetchval(COMPLETED_SQL[system])) - baseline
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


# --------------------------------------------------------------------------- driver


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=f"this project vs Awa {AWA_PG_VERSION}, side by side (issue 8)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="small smoke run, no crash scenario")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"subset of {SCENARIOS}")
    p.add_argument("--awa-venv", type=Path, default=REPO_ROOT / ".awa" / "venv-awa-pg")
    p.add_argument(
        "--data-dir",
        default=os.path.join(".awa", "bench-pgdata-compare"),
        help="embedded PostgreSQL data directory (ignored with AWA_DATABASE_URL)",
    )
    p.add_argument("--fast", action="store_true", help="fsync/synchronous_commit off")
    p.add_argument("--bulk-jobs", type=int, default=100_000)
    p.add_argument("--drain-jobs", type=int, default=20_000)
    p.add_argument("--pickup-rate", type=float, default=200.0, help="inserts per second")
    p.add_argument("--pickup-seconds", type=float, default=20.0)
    p.add_argument("--promotion-jobs", type=int, default=1000)
    p.add_argument("--promotion-lead", type=float, default=2.0)
    p.add_argument("--promotion-spread", type=float, default=3.0)
    p.add_argument("--crash-jobs", type=int, default=20)
    p.add_argument("--crash-phase", type=float, default=1.0, help="s from survivor ready to kill")
    p.add_argument("--crash-timeout", type=float, default=300.0)
    add_output_args(p)
    args = p.parse_args(argv)
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenarios {sorted(unknown)}")
    if args.quick:
        args.bulk_jobs = min(args.bulk_jobs, 20_000)
        args.drain_jobs = min(args.drain_jobs, 5_000)
        args.pickup_seconds = min(args.pickup_seconds, 5.0)
        args.promotion_jobs = min(args.promotion_jobs, 300)
        if args.scenarios == ",".join(SCENARIOS):
            chosen = [s for s in chosen if s != "crash"]
    args.scenario_list = chosen
    return args


def scenario_params(args: argparse.Namespace, scenario: str) -> dict[str, Any]:
    return {
        "bulk_enqueue": {"jobs": args.bulk_jobs},
        "drain": {"jobs": args.drain_jobs},
        "pickup": {"rate": args.pickup_rate, "seconds": args.pickup_seconds, "warmup": 20},
        "promotion": {
            "jobs": args.promotion_jobs,
            "lead": args.promotion_lead,
            "spread": args.promotion_spread,
            "groups": 100,
        },
        "crash": {
            "jobs": args.crash_jobs,
            "phase": args.crash_phase,
            "timeout": args.crash_timeout,
        },
    }[scenario]


async def describe(pythons: dict[str, str]) -> dict[str, Any]:
    out = {}
    for system, python in pythons.items():
        adapter = Adapter(python, system, "describe", "unused", {})
        await adapter.start()
        out[system] = await adapter.result(60)
    return out


async def run(args: argparse.Namespace, server: BenchServer) -> dict[str, Any]:
    durability = await server.ensure_durability()
    info = await machine_info(server, durability)
    pythons = {"project": sys.executable, "awa069": str(ensure_awa_venv(args.awa_venv))}
    systems = await describe(pythons)
    if systems["awa069"].get("awa_pg_version") != AWA_PG_VERSION:
        raise SystemExit(f"expected awa-pg {AWA_PG_VERSION}: {systems['awa069']}")
    results: dict[str, dict[str, Any]] = {}
    for k, scenario in enumerate(args.scenario_list):
        params = scenario_params(args, scenario)
        results[scenario] = {}
        # Alternate which system goes first, so slow drift on a shared machine is not
        # always charged to the same one.
        order = SYSTEMS if k % 2 == 0 else tuple(reversed(SYSTEMS))
        for system in order:
            print(f"... {scenario}: {LABELS[system]}", file=sys.stderr, flush=True)
            async with fresh_database(server.url, f"cmp_{system}", migrate_schema=False) as db:
                try:
                    if scenario == "crash":
                        r = await run_crash(pythons[system], system, db, params, server.server_pid)
                    else:
                        r = await run_simple(
                            pythons[system], system, scenario, db, params, server.server_pid
                        )
                except (RuntimeError, TimeoutError) as exc:
                    r = {"error": str(exc), "ok": False}
            results[scenario][system] = r
    return {
        "benchmark": "compare",
        "mode": "quick" if args.quick else "full",
        "machine": info,
        "systems": systems,
        "parameters": {s: scenario_params(args, s) for s in args.scenario_list},
        "results": results,
        "comparison": compare_table(results),
    }


# ------------------------------------------------------------------------ the table

#: (scenario, figure, label, higher is better, aim) — aim: a callable on (ours, awa).
ROWS: tuple[tuple[str, str, str, bool, str | None], ...] = (
    ("bulk_enqueue", "jobs_per_s", "bulk enqueue, jobs/s", True, None),
    ("drain", "jobs_per_s", "drain, completed jobs/s", True, "ours >= Awa"),
    ("drain", "handled_per_s", "drain, handlers run/s", True, None),
    ("drain", "client_cpu_us_per_job", "drain, client CPU µs/job", False, None),
    ("pickup", "p50_ms", "pickup latency p50, ms", False, None),
    ("pickup", "p99_ms", "pickup latency p99, ms", False, None),
    ("promotion", "p50_ms", "promotion lateness p50, ms", False, None),
    ("promotion", "p99_ms", "promotion lateness p99, ms", False, "ours <= Awa / 5"),
    ("promotion", "max_ms", "promotion lateness max, ms", False, None),
    ("crash", "rescue_s", "crash rescue, s", False, "ours <= Awa"),
)


def _aim_met(aim: str, ours: float, theirs: float) -> bool:
    if aim == "ours >= Awa":
        return ours >= theirs
    if aim == "ours <= Awa / 5":
        return ours <= theirs / 5
    if aim == "ours <= Awa":
        return ours <= theirs
    raise ValueError(aim)


def compare_table(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for scenario, figure, label, higher, aim in ROWS:
        pair = results.get(scenario)
        if not pair:
            continue
        ours = pair.get("project", {}).get(figure)
        theirs = pair.get("awa069", {}).get(figure)
        row: dict[str, Any] = {
            "scenario": scenario,
            "figure": figure,
            "label": label,
            "ours": ours,
            "awa_069": theirs,
            "higher_is_better": higher,
        }
        if isinstance(ours, int | float) and isinstance(theirs, int | float) and theirs:
            row["ratio_ours_over_awa"] = round(ours / theirs, 3)
            better = ours >= theirs if higher else ours <= theirs
            row["better"] = "ours" if better else "Awa"
        if aim is not None:
            row["aim"] = aim
            if scenario == "crash" and ours is not None and theirs is None:
                # Awa did not finish within the timeout: ours is no worse.
                row["aim_met"] = True
            elif isinstance(ours, int | float) and isinstance(theirs, int | float):
                row["aim_met"] = _aim_met(aim, ours, theirs)
            else:
                row["aim_met"] = None
        rows.append(row)
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def render(payload: dict[str, Any]) -> str:
    m = payload["machine"]
    lines = [
        f"awa vs Awa {AWA_PG_VERSION} ({payload['mode']}) {m['date']}",
        f"  {describe_machine(m)}",
        f"  load average at start: {m['load_average_at_start']}",
        "",
        f"  {'figure':<30} {'ours':>12} {'Awa 0.6.9':>12} {'ours/Awa':>9}  aim",
    ]
    for row in payload["comparison"]:
        aim = ""
        if "aim" in row:
            met = row["aim_met"]
            aim = f"{row['aim']}: " + ("-" if met is None else ("ok" if met else "MISSED"))
        lines.append(
            f"  {row['label']:<30} {_fmt(row['ours']):>12} {_fmt(row['awa_069']):>12}"
            f" {_fmt(row.get('ratio_ours_over_awa')):>9}  {aim}"
        )
    lines += [
        "",
        "  neighbour load per run (other_cores: CPU used by neither system nor PostgreSQL)",
    ]
    for scenario, pair in payload["results"].items():
        for system, r in pair.items():
            load = r.get("load", {})
            err = f"  ERROR {r['error'][:200]}" if "error" in r else ""
            lines.append(
                f"  {scenario:<13} {LABELS[system]:<20} other {_fmt(load.get('other_cores')):>5}"
                f"  postgres {_fmt(load.get('postgres_cores')):>5}"
                f"  client {_fmt(load.get('client_cores')):>5}  ok={r.get('ok')}{err}"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    payload = run_and_report(args, run, render, "compare", SCENARIOS)
    broken = [
        f"{s}/{sys_}"
        for s, pair in payload["results"].items()
        for sys_, r in pair.items()
        if sys_ == "project" and not r.get("ok")
    ]
    if broken:
        print(f"FAILED (this project's runs): {broken}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
