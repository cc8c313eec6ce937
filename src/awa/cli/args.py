"""Argument helpers shared by the verb modules, so a flag is spelled (and helped) the same
way wherever it appears."""

from __future__ import annotations

import argparse
from typing import TypeAlias

from awa.config import LANE_MODES

__all__ = ["Verbs", "lanes_arg", "queue_arg", "reporter", "serving_args", "watch_arg"]

#: The ``add_subparsers`` object verb modules add their parsers to.
#: (A string: the class is not subscriptable at run time.)
Verbs: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def reporter(sub: Verbs, name: str, help_text: str) -> argparse.ArgumentParser:
    """A verb that reports something, hence takes ``--json``."""
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--json", action="store_true", help="print JSON")
    return p


def queue_arg(text: str) -> tuple[str, int]:
    """``--queue NAME[=CONCURRENCY]``; a bad value is an argparse error, not a traceback."""
    name, _, limit = text.partition("=")
    try:
        return name, int(limit or "50")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--queue expects NAME or NAME=CONCURRENCY, got {text!r}"
        ) from None


def serving_args(p: argparse.ArgumentParser) -> None:
    """Health and metrics endpoints of a long-running process (worker, maintenance run)."""
    p.add_argument(
        "--health-port",
        type=int,
        help="serve /livez, /readyz and /health (JSON: leadership, lane health) on this port",
    )
    p.add_argument("--health-host", default="127.0.0.1", help="bind address for --health-port")
    p.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics on this port (OTLP export follows the OTEL_* "
        "environment variables, e.g. OTEL_EXPORTER_OTLP_ENDPOINT)",
    )


def watch_arg(p: argparse.ArgumentParser) -> None:
    """``--watch [SECONDS]`` on a status view (see ``awa.cli.output.watching``)."""
    p.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=2.0,
        metavar="SECONDS",
        help="refresh every SECONDS (default 2) until Ctrl-C",
    )


def lanes_arg(p: argparse.ArgumentParser) -> None:
    """``--lanes``: the maintenance lane mode of a process that may lead."""
    p.add_argument(
        "--lanes",
        choices=LANE_MODES,
        default="split",
        help="maintenance lane mode (default split; see ADR 003)",
    )
