"""``--sink webhook:NAME=URL`` on ``awa worker`` and ``awa maintenance run`` (issue 17):
event sinks without code.

A real HTTP receiver on loopback records every POST. A worker started with ``--sink`` runs a
job whose handler raises (one attempt): its ``job.failed`` event arrives, signed with the
secret from ``AWA_SINK_SECRET_<NAME>``. ``awa maintenance run --app ... --sink`` (which never
runs handlers) delivers the ``cron.fired`` events of the application's schedule. A bad spec,
a missing secret or a URL the library refuses is one ``awa: error: --sink: ...`` line and
exit 2, no traceback.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest

import awa
from awa.events import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from support.cli_process import awa as run_awa
from support.cli_process import awa_env, error_lines, spawn_awa, wait_for_line

SECRET = "whsec-test-secret"

APP = """\
import awa

client = awa.Client()


@client.handler("explode")
async def explode(ctx: awa.JobContext) -> None:
    raise KeyError("no such customer")


client.schedule("every-second", "* * * * * *", "explode", queue="elsewhere")
"""


@dataclass
class Hook:
    body: dict[str, Any]
    headers: dict[str, str]
    raw: bytes


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    hooks: list[Hook] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/awa-events"

    def wait_for(self, kind: str, timeout: float = 60.0) -> Hook:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for hook in list(self.hooks):
                if hook.body.get("kind") == kind:
                    return hook
            time.sleep(0.1)
        raise AssertionError(f"no {kind} event arrived: {[h.body for h in self.hooks]}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hooks: list[Hook] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            hooks.append(Hook(json.loads(raw), headers, raw))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Receiver(server, hooks)
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def app_folder(tmp_path: Path) -> Path:
    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text(APP)
    return tmp_path


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def assert_signed(hook: Hook) -> None:
    assert verify_signature(
        SECRET,
        hook.raw,
        hook.headers[TIMESTAMP_HEADER.lower()],
        hook.headers[SIGNATURE_HEADER.lower()],
    )


def test_worker_sink_delivers_a_failed_jobs_event(
    app_folder: Path, database_url: str, receiver: Receiver
) -> None:
    env = awa_env(AWA_SINK_SECRET_HOOKS=SECRET)
    worker = spawn_awa(
        "worker", "--app", "shop.jobs:client", "--database-url", database_url,
        "--sink", f"webhook:hooks={receiver.url}",
        cwd=app_folder, env=env,
    )  # fmt: skip
    try:
        banner = wait_for_line(worker, "Ctrl-C to stop")
        assert "event sinks ['hooks']" in banner[-1]

        async def insert() -> int:
            async with awa.Client(database_url) as client:
                return (await client.insert("explode", {"order": 7}, max_attempts=1)).id

        job_id = anyio.run(insert)
        hook = receiver.wait_for("job.failed")
    finally:
        stop(worker)
    assert hook.body["data"]["job_id"] == job_id
    assert hook.body["data"]["kind"] == "explode"
    assert hook.headers["x-awa-event-kind"] == "job.failed"
    assert_signed(hook)


def test_maintenance_run_sink_delivers_cron_fires(
    app_folder: Path, database_url: str, receiver: Receiver
) -> None:
    env = awa_env(AWA_SINK_SECRET=SECRET)  # the fallback for every sink
    process = spawn_awa(
        "maintenance", "run", "--app", "shop.jobs:client", "--database-url", database_url,
        "--sink", f"webhook:ops-hooks={receiver.url}",
        cwd=app_folder, env=env,
    )  # fmt: skip
    try:
        banner = wait_for_line(process, "Ctrl-C to stop")
        assert "event sinks ['ops-hooks']" in banner[-1]
        hook = receiver.wait_for("cron.fired")
    finally:
        stop(process)
    assert hook.body["data"]["schedule"] == "every-second"
    assert_signed(hook)


@pytest.mark.parametrize(
    ("spec", "env", "message"),
    [
        ("hooks=http://127.0.0.1:9/x", {}, "expected webhook:NAME=URL, got 'hooks=http'"),
        ("kafka:hooks=http://127.0.0.1:9/x", {}, "expected webhook:NAME=URL, got 'kafka'"),
        ("webhook:hooks", {}, "expected webhook:NAME=URL (a name and a URL)"),
        ("webhook:=http://127.0.0.1:9/x", {}, "expected webhook:NAME=URL (a name and a URL)"),
        ("webhook:hooks=http://127.0.0.1:9/x", {}, "set AWA_SINK_SECRET_HOOKS"),
        ("webhook:hooks=ftp://user:pw@host/x", {"AWA_SINK_SECRET": "s"}, "expected an http(s) URL"),
    ],
)
def test_bad_sink_is_one_error_line(
    database_url: str, spec: str, env: dict[str, str], message: str
) -> None:
    base = {k: v for k, v in awa_env().items() if not k.startswith("AWA_SINK_SECRET")}
    for verb in (("worker", "--app", "awa:Client"), ("maintenance", "run")):
        result = run_awa(*verb, "--database-url", database_url, "--sink", spec, env={**base, **env})
        assert result.returncode == 2, result.stderr
        (line,) = error_lines(result.stderr)
        assert line.startswith("awa: error: --sink: "), line
        assert message in line, line
        assert "pw@" not in line  # a URL's credentials are never echoed


def test_worker_processes_pass_every_sink_on_to_their_children() -> None:
    """``--processes N``: each child worker gets the same ``--sink`` flags (the secret
    travels in the inherited environment, never in the arguments)."""
    from awa.cli.main import build_parser
    from awa.cli.worker_processes import child_argv

    specs = ["webhook:a=http://127.0.0.1:9/a", "webhook:b=http://127.0.0.1:9/b"]
    argv = ["worker", "--app", "m:c", "--processes", "2"]
    for spec in specs:
        argv += ["--sink", spec]
    child = child_argv(build_parser().parse_args(argv), migrate=False, slot=1)
    assert [child[i + 1] for i, a in enumerate(child) if a == "--sink"] == specs
