"""The library side of worker processes (ADR 028): the restart policy, the supervisor run
from Python (``WorkerProcesses``) against the test suite's PostgreSQL, and the scaling
benchmark driven through it. The command line's side is in tests/cli/test_worker_processes.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import asyncpg
import pytest

from awa.errors import ConfigError, ValidationError, WorkerCrashLoop
from awa.runtime.processes import WorkerProcesses, resolve_processes, worker_argv
from awa.runtime.restarts import RestartPolicy, RestartTracker

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "processes.py"

APP = """\
import awa

client = awa.Client()


@client.handler("noop")
async def noop(ctx: awa.JobContext) -> None:
    return None
"""


def test_restart_delays_double_per_slot_and_a_sixth_death_in_the_window_is_a_loop() -> None:
    tracker = RestartTracker(RestartPolicy(max_restarts=5, window=60, first_delay=0.25))
    delays = [tracker.restart_delay(0, now=t) for t in (0, 1, 2, 3, 4)]
    assert delays == [0.25, 0.5, 1.0, 2.0, 4.0]
    assert tracker.restart_delay(1, now=5) == 0.25  # another slot has its own count
    assert tracker.restart_delay(0, now=5) is None  # the sixth death within 60 s


def test_restarts_leave_the_window_and_the_delay_is_capped() -> None:
    tracker = RestartTracker(RestartPolicy(max_restarts=3, window=10, max_delay=0.6))
    assert [tracker.restart_delay(0, now=t) for t in (0, 1, 2)] == [0.25, 0.5, 0.6]
    assert tracker.restart_delay(0, now=11.5) == 0.5  # the first two have left the window
    assert tracker.recent(0) == 2
    with pytest.raises(ValueError):
        RestartPolicy(first_delay=2, max_delay=1)


def test_bad_arguments_are_typed_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_processes(None) == resolve_processes(0) == (os.cpu_count() or 1)
    with pytest.raises(ValidationError):
        resolve_processes(-1)
    with pytest.raises(ValidationError):
        worker_argv("no_attribute")
    monkeypatch.delenv("AWA_DATABASE_URL", raising=False)
    with pytest.raises(ConfigError):
        WorkerProcesses.for_app("m:client", 2, env={})


def banners(log: Path) -> int:
    return log.read_text().count("running queues")


async def test_the_supervisor_runs_children_from_python_and_stops_them(
    tmp_path: Path, database_url: str, raw: asyncpg.Connection
) -> None:
    (tmp_path / "libapp.py").write_text(APP)
    log = tmp_path / "children.log"
    with log.open("wb") as output:
        supervisor = WorkerProcesses.for_app(
            "libapp:client", 2, database_url=database_url, cwd=tmp_path, shutdown_grace=5,
            output=output.fileno(),
        )  # fmt: skip
        async with anyio.create_task_group() as tg:
            tg.start_soon(supervisor.run)
            with anyio.fail_after(60):  # both ready: their banners are out
                while True:
                    if banners(log) == 2:
                        break
                    await anyio.sleep(0.1)
            pids = {r[0] for r in await raw.fetch("SELECT pid FROM awa.runtimes")}
            assert pids == set(supervisor.pids.values())
            supervisor.request_stop()
    assert supervisor.clean and supervisor.pids == {}, (supervisor.stop_codes, log.read_text())
    assert await raw.fetchval("SELECT count(*) FROM awa.runtimes WHERE stopped_at IS NULL") == 0


async def test_a_child_that_cannot_start_ends_in_a_crash_loop_error(
    tmp_path: Path, database_url: str
) -> None:
    supervisor = WorkerProcesses.for_app(
        "no_such_module:client", 1, database_url=database_url, cwd=tmp_path,
        policy=RestartPolicy(max_restarts=2, first_delay=0.01), output=subprocess.DEVNULL,
    )  # fmt: skip
    with anyio.fail_after(60), pytest.raises(WorkerCrashLoop, match="crash-looping"):
        await supervisor.run()
    assert supervisor.started == 3 and not supervisor.clean


def test_the_benchmark_runs_with_tiny_numbers(tmp_path: Path, server_url: str) -> None:
    """``benchmarks/processes.py`` end to end, 1 and 2 processes, 200 jobs: it completes
    every drain and writes its JSON (no timing is asserted)."""
    env = {**os.environ, "AWA_DATABASE_URL": server_url}
    result = subprocess.run(
        [sys.executable, str(BENCHMARK), "--quick", "--jobs", "200", "--save",
         "--output-dir", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    payload = json.loads((tmp_path / "processes-quick-latest.json").read_text())
    runs = payload["results"]["drain"]["runs"]
    assert [r["processes"] for r in runs] == [1, 2]
    assert all(r["completed"] == 200 and r["stopped_cleanly"] for r in runs)
    assert all(r["wait_event_samples"] >= 1 for r in runs)
    assert "efficiency" in result.stdout


def test_run_processes_blocks_until_sigterm_then_stops_cleanly(
    tmp_path: Path, database_url: str
) -> None:
    """``awa.run_processes`` as a script calls it: children start, SIGTERM stops them all,
    and it returns True (every child stopped cleanly)."""
    (tmp_path / "libapp.py").write_text(APP)
    script = (
        "import sys, awa\n"
        f"clean = awa.run_processes('libapp:client', 2, database_url={database_url!r})\n"
        "print('clean' if clean else 'unclean', flush=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "AWA_DATABASE_URL"}
    process = subprocess.Popen(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    seen: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            if "".join(seen).count("running queues") == 2:
                break
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    output = "".join(seen) + rest
    assert process.returncode == 0, output
    assert output.strip().endswith("clean") and "unclean" not in output, output
