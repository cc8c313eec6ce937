"""Argument helpers shared by the verb modules, so a flag is spelled (and helped) the same
way wherever it appears."""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from awa.config import LANE_MODES
from awa.errors import AwaError, ConfigError
from awa.events import EVENT_KINDS, Sink, WebhookSink

__all__ = [
    "SHARED_HELP",
    "VerbParser",
    "Verbs",
    "add_global_options",
    "lanes_arg",
    "port_arg",
    "positive_int",
    "queue_arg",
    "reporter",
    "seconds_arg",
    "serving_args",
    "sink_args",
    "sinks_from_args",
    "watch_arg",
]

#: The ``add_subparsers`` object verb modules add their parsers to.
#: (A string: the class is not subscriptable at run time.)
Verbs: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


#: Help for flags that mean the same on every verb, given where a verb module leaves it out.
SHARED_HELP = {"--json": "print JSON (for scripts) instead of a table"}


def add_global_options(p: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options every verb understands. The top-level parser gives them their defaults;
    every subcommand parser repeats them with ``SUPPRESS`` defaults, so ``awa jobs list
    --database-url URL`` works and an absent option never overrides one given earlier."""
    default: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
    group = p.add_argument_group("global options")
    group.add_argument(
        "--database-url",
        help="PostgreSQL URL (default: $AWA_DATABASE_URL, else embedded)",
        **default,
    )
    group.add_argument(
        "--data-dir",
        help="embedded PostgreSQL data directory (default: $AWA_EMBEDDED_DIR, else ./.awa/pgdata)",
        **default,
    )
    group.add_argument("-v", "--verbose", action="store_true", help="debug logging", **default)
    group.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="log lines as text (default) or one JSON object per line "
        "(default: $AWA_LOG_FORMAT, else text)",
        **default,
    )


class VerbParser(argparse.ArgumentParser):
    """The parser class of every subcommand (``add_subparsers(parser_class=...)``, which
    nested subcommands inherit): it accepts the global options after the verb too, and
    fills in the shared help of a flag a verb module added without one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        add_global_options(self, suppress=True)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        if "help" not in kwargs and args and args[0] in SHARED_HELP:
            kwargs["help"] = SHARED_HELP[args[0]]
        return super().add_argument(*args, **kwargs)


def port_arg(text: str) -> int:
    """A TCP port, 0 (any free one) to 65535: beyond it the socket layer raises
    ``OverflowError`` deep inside the server, far from the flag that caused it."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {port}")
    return port


def positive_int(text: str) -> int:
    """An integer of at least 1 (a size or a count where 0 or less means nothing)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seconds_arg(text: str) -> float:
    """A finite, non-negative number of seconds. ``float()`` alone accepts ``nan`` (which
    compares false with everything, so a bounded wait never ends or never starts),
    ``inf`` and negative values."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"seconds must be a finite number, 0 or more, got {text!r}"
        )
    return value


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
        type=port_arg,
        help="serve /livez, /readyz and /health (JSON: leadership, lane health) on this port",
    )
    p.add_argument("--health-host", default="127.0.0.1", help="bind address for --health-port")
    p.add_argument(
        "--metrics-port",
        type=port_arg,
        help="serve Prometheus metrics on this port (OTLP export follows the OTEL_* "
        "environment variables, e.g. OTEL_EXPORTER_OTLP_ENDPOINT)",
    )
    p.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="bind address for --metrics-port (default 127.0.0.1; 0.0.0.0 for every "
        "interface, e.g. in a container scraped from outside)",
    )


def watch_arg(p: argparse.ArgumentParser) -> None:
    """``--watch [SECONDS]`` on a status view (see ``awa.cli.output.watching``)."""
    p.add_argument(
        "--watch",
        type=seconds_arg,  # a negative or NaN interval used to refresh forever at 0.2 s
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


#: ``--sink`` kinds and how each is spelled (one today; the prefix leaves room for more).
_SINK_FORMS = "webhook:NAME=URL"


def sink_args(p: argparse.ArgumentParser) -> None:
    """``--sink webhook:NAME=URL`` (repeatable): event sinks without code (ADR 034)."""
    p.add_argument(
        "--sink",
        action="append",
        default=[],
        metavar=_SINK_FORMS,
        help=f"deliver lifecycle events ({', '.join(sorted(EVENT_KINDS))}) to a "
        "webhook, signed with the secret in $AWA_SINK_SECRET_<NAME> (NAME upper-cased, "
        "other characters as _), else $AWA_SINK_SECRET (repeatable)",
    )


def sink_secret_variable(name: str) -> str:
    """The environment variable holding sink ``name``'s signing secret. A secret never
    goes on the command line: every local user can read a process's arguments."""
    return "AWA_SINK_SECRET_" + re.sub(r"[^A-Z0-9]", "_", name.upper())


def sinks_from_args(specs: Sequence[str], environ: Mapping[str, str] | None = None) -> list[Sink]:
    """The sinks ``--sink`` names, built with the library's own classes (so a URL or name
    the library refuses is refused here, in its words). Raises ``ConfigError`` starting
    ``--sink:``, which the CLI prints as one ``awa: error:`` line."""
    env = os.environ if environ is None else environ
    sinks: list[Sink] = []
    for spec in specs:
        kind, colon, rest = spec.partition(":")
        name, equals, url = rest.partition("=")
        if kind != "webhook" or not colon:
            raise ConfigError(f"--sink: expected {_SINK_FORMS}, got {kind!r} before ':'")
        if not equals or not name.strip() or not url:
            raise ConfigError(f"--sink: expected {_SINK_FORMS} (a name and a URL)")
        if name in {s.name for s in sinks}:
            raise ConfigError(f"--sink: sink name {name!r} given twice")
        variable = sink_secret_variable(name)
        secret = env.get(variable) or env.get("AWA_SINK_SECRET")
        if not secret:
            raise ConfigError(
                f"--sink: webhook {name!r} needs a signing secret: set {variable} "
                "(or AWA_SINK_SECRET for every sink)"
            )
        try:
            sinks.append(WebhookSink(name, url, secret=secret))
        except AwaError as exc:  # the library's ValidationError, URL already redacted
            raise ConfigError(f"--sink: {exc}") from None
    return sinks
