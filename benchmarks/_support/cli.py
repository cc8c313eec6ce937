"""The command-line flags every benchmark script shares, defined once so they mean the same
thing everywhere: which server (``--data-dir``, ``--fast``), which scenarios, and where
results go (``--no-save``, ``--save``, ``--output-dir``)."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from pathlib import Path

from _support import RESULTS_DIR

__all__ = [
    "add_output_args",
    "add_server_args",
    "fmt_duration",
    "parse_duration",
    "parse_scenarios",
]


def add_server_args(parser: argparse.ArgumentParser, *, data_dir: str) -> None:
    """``--data-dir`` (embedded server, default ``.awa/<data_dir>``) and ``--fast``."""
    parser.add_argument(
        "--data-dir",
        default=os.path.join(".awa", data_dir),
        help="embedded PostgreSQL data directory (ignored with AWA_DATABASE_URL)",
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="embedded server with fsync/synchronous_commit off (not what users run)",
    )


def add_output_args(parser: argparse.ArgumentParser) -> None:
    """``--no-save``, ``--save`` (even with ``--quick``) and ``--output-dir``."""
    parser.add_argument("--no-save", action="store_true", help="print only; write no JSON")
    parser.add_argument("--save", action="store_true", help="write JSON even with --quick")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR, help="where JSON goes")


def parse_scenarios(
    parser: argparse.ArgumentParser, text: str, scenarios: Sequence[str]
) -> list[str]:
    """The comma-separated scenario names in ``text``; an unknown one is a usage error."""
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    unknown = set(chosen) - set(scenarios)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {tuple(scenarios)}")
    return chosen


def parse_duration(text: str) -> float:
    """``90``, ``30s``, ``10m``, ``2h``, ``1h30m`` → seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smh])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"bad duration {text!r}: use e.g. 30s, 10m, 2h")
    scale = {"s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


def fmt_duration(seconds: float) -> str:
    whole = round(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"
