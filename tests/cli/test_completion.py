"""``awa completion SHELL``: the script the real command prints, loaded into a real shell.

The bash script is sourced in a ``bash`` child; the completion function it registers for
``awa`` (read back from ``complete -p awa``, not assumed) is called the way bash calls it
on Tab (``COMP_WORDS``/``COMP_CWORD``), and ``COMPREPLY`` is what the user would be
offered. The other shells' scripts are checked for what they name (their shells are not
on the test machines) and parsed by the shell when it is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from awa.cli.completion import SHELLS
from awa.cli.main import VERBS
from support.cli_process import awa, awa_env, error_lines

#: Calls the function bash would call on Tab for ``awa``, with the words given as
#: arguments (the last one is the word being completed), and prints COMPREPLY, one a line.
_COMPLETE = r"""
set -u
source "$1"; shift
fn=$(complete -p awa | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
[ -n "$fn" ] || { echo "no completion function registered for awa" >&2; exit 3; }
COMP_WORDS=("$@")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
COMPREPLY=()
"$fn" awa "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    result = awa("completion", "bash")
    assert result.returncode == 0, result.stderr
    path = tmp_path_factory.mktemp("completion") / "awa.bash"
    path.write_text(result.stdout)
    return path


def offered(script: Path, *words: str, cwd: Path | None = None) -> list[str]:
    """What bash offers on Tab after ``words`` (the last one is being completed)."""
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", _COMPLETE, "complete-awa", str(script), *words],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


def test_a_verb_completes_from_its_prefix(bash_script: Path) -> None:
    assert offered(bash_script, "awa", "wor") == ["worker"]


def test_every_verb_is_offered(bash_script: Path) -> None:
    assert set(offered(bash_script, "awa", "")) == {*VERBS, "completion"}


def test_an_option_of_a_verb_completes(bash_script: Path) -> None:
    assert offered(bash_script, "awa", "worker", "--shut") == ["--shutdown-grace"]
    assert "--json" in offered(bash_script, "awa", "demo", "--")
    assert "--rate" in offered(bash_script, "awa", "demo", "--")


def test_nested_subcommands_and_their_options_complete(bash_script: Path) -> None:
    assert set(offered(bash_script, "awa", "jobs", "")) >= {"list", "show", "cancel", "retry"}
    assert offered(bash_script, "awa", "jobs", "list", "--sta") == ["--state"]


def test_choices_complete(bash_script: Path) -> None:
    assert set(offered(bash_script, "awa", "worker", "--lanes", "")) == {"split", "single", "auto"}
    assert set(offered(bash_script, "awa", "completion", "")) == set(SHELLS)


def test_global_options_complete_after_the_verb(bash_script: Path) -> None:
    assert offered(bash_script, "awa", "queues", "--database-u") == ["--database-url"]


def test_data_dir_completes_directories_only(bash_script: Path, tmp_path: Path) -> None:
    (tmp_path / "pgdata-one").mkdir()
    (tmp_path / "pgdata-file").write_text("not a directory")
    for words in (("awa", "--data-dir", "pgd"), ("awa", "queues", "--data-dir", "pgd")):
        assert offered(bash_script, *words, cwd=tmp_path) == ["pgdata-one"], words


@pytest.mark.parametrize("shell", ["zsh", "fish", "tcsh"])
def test_other_shells_scripts_name_every_verb(shell: str, tmp_path: Path) -> None:
    result = awa("completion", shell)
    assert result.returncode == 0, result.stderr
    for verb in (*VERBS, "completion"):
        assert verb in result.stdout, (shell, verb)
    assert "shutdown-grace" in result.stdout  # tcsh lists options without their dashes
    binary = shutil.which(shell)
    if binary is not None and shell in ("zsh", "fish"):  # both parse without running: -n
        path = tmp_path / f"awa.{shell}"
        path.write_text(result.stdout)
        checked = subprocess.run(
            [binary, "-n", str(path)], capture_output=True, text=True, timeout=30, check=False
        )
        assert checked.returncode == 0, checked.stderr


def test_an_unknown_shell_is_one_error_line() -> None:
    result = awa("completion", "cmd.exe")
    assert result.returncode == 2
    assert result.stdout == ""
    assert error_lines(result.stderr) == [
        f"awa: error: unknown shell 'cmd.exe': expected one of {', '.join(SHELLS)}"
    ]


def test_completion_needs_no_database(tmp_path: Path) -> None:
    """No URL: a verb would start an embedded server in ./.awa; this one must not."""
    result = awa("completion", "bash", cwd=tmp_path, env=awa_env())
    assert result.returncode == 0, result.stderr
    assert "_shtab_awa" in result.stdout
    assert not (tmp_path / ".awa").exists()
    unreachable = awa("--database-url", "postgresql://awa@127.0.0.1:1/awa", "completion", "zsh")
    assert unreachable.returncode == 0, unreachable.stderr


def test_help_says_how_to_install() -> None:
    result = awa("completion", "--help")
    assert result.returncode == 0
    for line in ("completions/awa", "~/.zfunc/_awa", "fish/completions/awa.fish"):
        assert line in result.stdout
