"""Every Python block of README.md is a contiguous run of whole lines of a file under
``examples/``, so the code a reader copies is code the suite runs (issue 18). A block that
is not fails the test, named by its line in README.md and its first line.

Only blocks of the languages allowed below may be anything else; an untagged block counts
as not allowed, so Python cannot slip in without its tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"

#: Languages of blocks that are not excerpts: commands to type, which no example holds.
#: Keep it to shells; anything a reader would paste into a Python file belongs in examples/.
NOT_EXCERPTS = {"bash", "sh", "console"}

FENCE = re.compile(r"^```([\w+-]*)[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    language: str
    lines: tuple[str, ...]

    @property
    def name(self) -> str:
        first = next((text for text in self.lines if text.strip()), "")
        return f"README.md:{self.line} ({first.strip()[:60]!r})"


def blocks(markdown: str) -> list[Block]:
    return [
        Block(
            line=markdown.count("\n", 0, m.start()) + 1,
            language=m.group(1),
            lines=tuple(m.group(2).splitlines()),
        )
        for m in FENCE.finditer(markdown)
    ]


def example_files() -> dict[Path, list[str]]:
    return {
        path.relative_to(ROOT): path.read_text().splitlines()
        for path in sorted(EXAMPLES.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def found_in(block: Block, files: dict[Path, list[str]]) -> Path | None:
    """The first example file holding the block's lines, in order and back to back."""
    size = len(block.lines)
    for path, lines in files.items():
        for start in range(len(lines) - size + 1):
            if tuple(lines[start : start + size]) == block.lines:
                return path
    return None


def test_every_python_block_is_an_excerpt_of_an_example() -> None:
    found = blocks(README.read_text())
    files = example_files()
    python = [b for b in found if b.language == "python"]
    assert len(python) >= 6  # the extraction works: the README has at least that many
    missing = [b.name for b in python if not b.lines or found_in(b, files) is None]
    assert missing == [], "README blocks found in no file under examples/: " + ", ".join(missing)


def test_every_other_block_is_a_shell_command() -> None:
    others = [b for b in blocks(README.read_text()) if b.language != "python"]
    wrong = [f"{b.name} tagged {b.language!r}" for b in others if b.language not in NOT_EXCERPTS]
    assert wrong == [], "blocks neither python nor an allowed shell: " + ", ".join(wrong)


def test_a_block_changed_by_one_character_is_reported() -> None:
    """The check can fail: a real excerpt passes, the same excerpt with one character
    changed, or cut mid-line, does not."""
    files = example_files()
    quickstart = (EXAMPLES / "quickstart" / "quickstart.py").read_text().splitlines()
    excerpt = Block(line=1, language="python", lines=tuple(quickstart[8:12]))
    assert found_in(excerpt, files) == Path("examples/quickstart/quickstart.py")
    changed = (excerpt.lines[0] + " ", *excerpt.lines[1:])
    assert found_in(Block(1, "python", changed), files) is None
    cut = (excerpt.lines[0][1:], *excerpt.lines[1:])
    assert found_in(Block(1, "python", cut), files) is None
