"""``awa worker --metrics-host`` and ``awa --log-format json`` in a real child process
(issue 17).

The metrics endpoint binds loopback unless told otherwise: the kernel's own socket table
(``/proc/net/tcp``) must list the listening port on ``127.0.0.1`` only, and a connection to
another local address of the machine (when it has one) is refused. The same worker logs in
JSON: every line of its stderr parses, and the failure of a job inserted inside a producer
span is one record naming the job, its traceback and the producer's trace id.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider

import awa
from awa.model import TERMINAL_STATES
from support.cli_process import awa_env

APP = """\
import awa

client = awa.Client()


@client.handler("explode")
async def explode(ctx: awa.JobContext) -> None:
    raise KeyError("no such customer")
"""

needs_proc = pytest.mark.skipif(
    not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net/tcp"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening_addresses(port: int) -> set[str]:
    """The IPv4 and IPv6 addresses with a socket in LISTEN state on ``port`` (from the
    kernel, not from what the process claims)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: TCP_LISTEN
                found.add(_address(address))
    return found


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def other_local_address() -> str | None:
    """An IPv4 address of this machine that is not loopback, if it has one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for UDP connect
            address = str(s.getsockname()[0])
    except OSError:
        return None
    return None if address.startswith("127.") else address


@pytest.fixture
def app_folder(tmp_path: Path) -> Path:
    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text(APP)
    return tmp_path


@pytest.fixture
def worker(app_folder: Path, database_url: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``awa --log-format json worker --metrics-host 127.0.0.1 --metrics-port P``; stderr
    goes to ``app_folder/stderr.log``. Stopped with SIGINT at the end."""
    port = free_port()
    command = [
        sys.executable, "-m", "awa", "--log-format", "json",
        "worker", "--app", "shop.jobs:client", "--database-url", database_url,
        "--metrics-host", "127.0.0.1", "--metrics-port", str(port),
    ]  # fmt: skip
    env = {k: v for k, v in awa_env().items() if not k.startswith("OTEL_")}
    with (app_folder / "stderr.log").open("w") as stderr:
        proc = subprocess.Popen(
            command, cwd=app_folder, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def wait_for_banner(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "running queues" in line:
            return lines
    raise AssertionError(f"worker exited ({proc.wait()}): {''.join(lines)}")


@needs_proc
async def test_worker_binds_metrics_on_the_given_host_only_and_logs_json(
    worker: tuple[subprocess.Popen[str], int], app_folder: Path, database_url: str
) -> None:
    proc, port = worker
    printed = await anyio.to_thread.run_sync(wait_for_banner, proc)
    assert f"Prometheus metrics on http://127.0.0.1:{port}/metrics\n" in printed
    assert listening_addresses(port) == {"127.0.0.1"}
    async with httpx.AsyncClient(timeout=10) as http:
        scrape = await http.get(f"http://127.0.0.1:{port}/metrics")
        assert scrape.status_code == 200 and "awa_jobs_claimed_total" in scrape.text
        other = other_local_address()
        if other is not None:
            with pytest.raises(httpx.ConnectError):
                await http.get(f"http://{other}:{port}/metrics")

    producer = TracerProvider().get_tracer("checkout")
    async with awa.Client(database_url) as client:
        with producer.start_as_current_span("place order") as span:
            job = await client.insert("explode", {}, max_attempts=1)
        with anyio.fail_after(30):
            while True:
                if (await client.get_job(job.id)).state in TERMINAL_STATES:
                    break
                await anyio.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0

    records: list[dict[str, Any]] = []
    for line in (app_folder / "stderr.log").read_text().splitlines():
        record = json.loads(line)  # every stderr line is one JSON object
        assert {"time", "level", "logger", "message"} <= set(record), line
        records.append(record)
    (failed,) = [r for r in records if r.get("event") == "job_failed"]
    assert (failed["job_id"], failed["kind"], failed["attempt"]) == (job.id, "explode", 1)
    assert failed["level"] == "ERROR" and failed["exc_type"] == "KeyError"
    assert "KeyError: 'no such customer'" in failed["traceback"]
    assert failed["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert any(r.get("event") == "leadership_gained" for r in records)


def test_an_unknown_awa_log_format_is_one_error_line(tmp_path: Path) -> None:
    env = awa_env(AWA_LOG_FORMAT="xml")
    result = subprocess.run(
        [sys.executable, "-m", "awa", "--database-url", "postgresql://unused", "migrate"],
        capture_output=True, text=True, timeout=60, check=False, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert (
        result.stderr.strip() == "awa: error: AWA_LOG_FORMAT must be one of text, json, got 'xml'"
    )
