"""Regenerate docs/metrics.md from awa.telemetry.catalogue.

Usage: ``python docs/generate_metrics.py`` (writes the file) or ``--check`` (exit 1 when the
committed file is stale, for CI without pytest).
"""

from __future__ import annotations

import sys
from pathlib import Path

from awa.telemetry.reference import render_markdown

TARGET = Path(__file__).resolve().parent / "metrics.md"


def main(argv: list[str]) -> int:
    fresh = render_markdown()
    if "--check" in argv:
        current = TARGET.read_text() if TARGET.exists() else ""
        if current != fresh:
            print(f"{TARGET} is stale: run python docs/generate_metrics.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(fresh)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
