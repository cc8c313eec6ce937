"""The CLI as a new user meets it (issue 18): ``--app`` from the app's own folder, global
options after the verb, ``--version`` and ``python -m awa``, and one ``awa: error:`` line
(or argparse's usage error), never a traceback, for a port in use, a port out of range, a
negative body limit, a NaN wait, and an unmigrated database.

The subprocess tests run the real command (``python -m awa`` of this interpreter); the
others call the CLI entry ``awa.cli.main.main`` in-process. All of them talk to the test
suite's PostgreSQL (``database_url``: migrated; ``empty_database_url``: no schema).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import signal
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from awa.cli.main import main
from support.cli_process import awa, error_lines, spawn_awa, wait_for_line

APP = """\
import awa

client = awa.Client()


@client.handler("hello", queue="greetings")
async def hello(ctx: awa.JobContext) -> None:
    pass
"""


@pytest.fixture
def app_folder(tmp_path: Path) -> Path:
    """An application folder the way a user has one: ``myapp/jobs.py`` holding a client,
    not installed, importable only from the folder itself."""
    package = tmp_path / "myapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text(APP)
    return tmp_path


@contextlib.contextmanager
def listening_socket() -> Iterator[int]:
    """A port some other program is serving on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def run_in_process(argv: Sequence[str]) -> tuple[int | str | None, str, str]:
    """``main(argv)`` here: (return code or SystemExit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code: int | str | None = main(list(argv))
        except SystemExit as stop:
            code = stop.code
    return code, out.getvalue(), err.getvalue()


def assert_one_error_line(result_stderr: str, *expected: str) -> None:
    lines = error_lines(result_stderr)
    assert len(lines) == 1, result_stderr
    assert lines[0].startswith("awa: error: "), result_stderr
    for text in expected:
        assert text in lines[0], result_stderr


# ----------------------------------------------------------------------------- --app


def test_worker_app_is_imported_from_the_working_directory(
    app_folder: Path, database_url: str
) -> None:
    worker = spawn_awa(
        "worker", "--app", "myapp.jobs:client", "--queue", "greetings=2", "--no-maintenance",
        "--database-url", database_url,
        cwd=app_folder,
    )  # fmt: skip
    try:
        seen = wait_for_line(worker, "running queues")
        assert "'hello'" in seen[-1]
        worker.send_signal(signal.SIGTERM)
        rest, _ = worker.communicate(timeout=60)
    finally:
        worker.kill()
        worker.wait()
    assert worker.returncode == 0, "".join(seen) + rest
    assert "Traceback" not in rest


def test_an_app_that_cannot_be_imported_says_which_module_and_where(
    tmp_path: Path, database_url: str
) -> None:
    result = awa(
        "worker", "--app", "myapp.jobs:client", "--database-url", database_url, cwd=tmp_path
    )
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "'myapp.jobs'", str(tmp_path), "No module named 'myapp'")


def test_an_app_whose_own_import_fails_names_what_it_lacks(
    app_folder: Path, database_url: str
) -> None:
    (app_folder / "myapp" / "jobs.py").write_text("import not_installed_anywhere\n" + APP)
    result = awa(
        "worker", "--app", "myapp.jobs:client", "--database-url", database_url, cwd=app_folder
    )
    assert result.returncode == 2
    assert_one_error_line(
        result.stderr, "importing 'myapp.jobs' failed", "No module named 'not_installed_anywhere'"
    )


# ------------------------------------------------------------------ global options, version


def test_global_options_are_accepted_after_the_subcommand(database_url: str) -> None:
    code, out, err = run_in_process(["jobs", "list", "--json", "--database-url", database_url])
    assert code == 0, err
    assert json.loads(out) == []


def test_a_global_option_after_the_subcommand_wins_and_one_before_is_kept(
    database_url: str,
) -> None:
    bad = "postgresql://nobody@127.0.0.1:1/nothing"
    code, _, err = run_in_process(
        ["--database-url", bad, "queues", "--json", "--database-url", database_url]
    )
    assert code == 0, err
    code, _, err = run_in_process(["--database-url", database_url, "-v", "queues", "--json"])
    assert code == 0, err  # the subcommand's absent --database-url does not erase it


def test_version_and_python_dash_m() -> None:
    result = awa("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"awa {importlib.metadata.version('awa-py')}"
    result = awa("--help")
    assert result.returncode == 0 and "usage: awa" in result.stdout


# ------------------------------------------------------------------- values out of range


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (("dashboard", "--port", "99999"), "--port"),
        (("dashboard", "--port", "-1"), "--port"),
        (("callbacks", "serve", "--port", "65536"), "--port"),
        (("worker", "--app", "m:c", "--health-port", "70000"), "--health-port"),
        (("maintenance", "run", "--metrics-port", "99999"), "--metrics-port"),
        (("callbacks", "serve", "--max-body", "-1"), "--max-body"),
        (("callbacks", "serve", "--max-body", "0"), "--max-body"),
        (("maintenance", "tick", "--wait", "-5"), "--wait"),
        (("maintenance", "tick", "--wait", "nan"), "--wait"),
        (("maintenance", "tick", "--wait", "inf"), "--wait"),
        (("worker", "--app", "m:c", "--shutdown-grace", "nan"), "--shutdown-grace"),
        (("queues", "--watch", "-1"), "--watch"),
        (("maintenance", "status", "--watch", "nan"), "--watch"),
        (("demo", "--rate", "0"), "--rate"),
        (("demo", "--rate", "inf"), "--rate"),
        (("demo", "--duration", "-3"), "--duration"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else v,
)
def test_values_out_of_range_are_usage_errors(argv: tuple[str, ...], option: str) -> None:
    code, _, err = run_in_process(argv)
    assert code == 2
    assert f"error: argument {option}: " in err and "Traceback" not in err


def test_a_port_out_of_range_is_a_usage_error_in_the_real_command() -> None:
    result = awa("dashboard", "--port", "99999", "--database-url", "postgresql://x@127.0.0.1/x")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "OverflowError" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "awa dashboard: error: argument --port: port must be 0-65535, got 99999"
    )


def test_accepted_values_still_parse(database_url: str) -> None:
    code, out, err = run_in_process(
        ["--database-url", database_url, "maintenance", "tick", "--wait", "0", "--json"]
    )
    assert code == 0, err
    assert json.loads(out)["leader"] is True


# ------------------------------------------------------------------------ ports in use


@pytest.mark.parametrize(
    "argv",
    [
        ("dashboard", "--port", "{port}"),
        ("callbacks", "serve", "--port", "{port}"),
        ("worker", "--app", "myapp.jobs:client", "--health-port", "{port}"),
        ("worker", "--app", "myapp.jobs:client", "--metrics-port", "{port}"),
    ],
    ids=lambda v: " ".join(a for a in v if not a.startswith("{")),
)
def test_a_port_in_use_is_one_error_line(
    app_folder: Path, database_url: str, argv: tuple[str, ...]
) -> None:
    with listening_socket() as port:
        command = [a.format(port=port) for a in argv]
        result = awa(*command, "--database-url", database_url, cwd=app_folder)
    assert result.returncode == 2, result.stderr
    assert_one_error_line(result.stderr, f":{port}: ", "in use")


# -------------------------------------------------------------------- unmigrated database


def test_maintenance_status_on_an_unmigrated_database_says_to_migrate(
    empty_database_url: str,
) -> None:
    code, _, err = run_in_process(["--database-url", empty_database_url, "maintenance", "status"])
    assert code == 2
    assert_one_error_line(err, "run `awa migrate`")


def test_subcommand_help_lists_the_global_options() -> None:
    for argv in (["worker"], ["dashboard"], ["maintenance", "tick"], ["callbacks", "serve"]):
        code, out, _ = run_in_process([*argv, "--help"])
        assert code == 0
        assert "global options:" in out and "--database-url" in out, argv


def test_the_embedded_server_is_announced_with_a_url_other_processes_can_use(
    tmp_path: Path,
) -> None:
    """Not only the data directory: the URL, so a second process can reach the server."""
    result = awa("migrate", "--data-dir", str(tmp_path / "pg"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if "using embedded PostgreSQL" in x]
    url = line.split("AWA_DATABASE_URL=", 1)[1].strip()
    assert url.startswith("postgresql://") and str(tmp_path / "pg") in url
