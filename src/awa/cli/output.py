"""Printing results: aligned tables for people, JSON for scripts (``--json``), and the
``--watch`` loop that reprints a status view."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import anyio

__all__ = ["emit", "table", "watching"]


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _finite(value: Any) -> Any:
    """``value`` with every NaN/infinity replaced by null: strict JSON has no token for
    them (a job due at ``-infinity`` has an infinite lag), and scripts parse strictly."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def emit(data: Any, *, as_json: bool, text: str | None = None) -> None:
    """Print ``data`` as JSON when asked, else the human ``text``."""
    if as_json:
        json.dump(
            _finite(data), sys.stdout, default=_default, indent=2, sort_keys=True, allow_nan=False
        )
        sys.stdout.write("\n")
    elif text is not None:
        print(text)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


async def watching(args: argparse.Namespace, show: Callable[[], Awaitable[int]]) -> int:
    """Run ``show`` once, or every ``--watch`` seconds (clearing the screen) until Ctrl-C."""
    interval = getattr(args, "watch", None)
    if interval is None:
        return await show()
    while True:
        if not args.json:
            print("\x1b[2J\x1b[H", end="")
        await show()
        sys.stdout.flush()
        await anyio.sleep(max(0.2, interval))
