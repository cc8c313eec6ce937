"""``awa``: migrate, run workers, inspect and steer jobs.

Every verb that reports something accepts ``--json``. Without ``--database-url`` or
``AWA_DATABASE_URL`` the CLI starts a private embedded PostgreSQL (``--data-dir``, default
``./.awa/pgdata``) and stops it on exit, SIGINT and SIGTERM included. The global options
may also follow the verb; ``--app module:attribute`` is imported from the working directory
first; ``python -m awa`` is the same command.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import signal
import sys
from collections.abc import Sequence
from typing import Protocol, cast

import anyio

from awa.cli import (
    callbacks,
    catalog,
    completion,
    cron,
    dashboard,
    demo,
    dlq,
    events,
    jobs,
    maintenance,
    migrate,
    queues,
    worker,
)
from awa.cli.args import VerbParser, Verbs, add_global_options
from awa.cli.database import resolve_database
from awa.cli.log_setup import setup_logging
from awa.cli.signals import StopSignals, handled_signals
from awa.errors import AwaError, ConfigError

__all__ = ["OFFLINE_VERBS", "VERBS", "build_parser", "main"]


class Verb(Protocol):
    """A verb module: ``cli/<verb>.py`` adds its parser and runs it (ADR 018)."""

    def add_parser(self, sub: Verbs) -> None: ...

    async def run(self, args: argparse.Namespace, url: str, embedded: bool) -> int: ...


class OfflineVerb(Protocol):
    """A verb that needs no database (``awa completion``): it runs before one is chosen,
    so it never starts an embedded server, and reads the whole parser."""

    def add_parser(self, sub: Verbs) -> None: ...

    def run_offline(self, parser: argparse.ArgumentParser, args: argparse.Namespace) -> int: ...


#: Every top-level verb, by name; the module of verb ``x`` is ``awa/cli/x.py``. Help lists
#: them in this order.
VERBS: dict[str, Verb] = {
    "migrate": migrate,
    "worker": worker,
    "jobs": jobs,
    "queues": queues,
    "dashboard": dashboard,
    "maintenance": maintenance,
    "cron": cron,
    "dlq": dlq,
    "catalog": catalog,
    "callbacks": callbacks,
    "events": events,
    "demo": demo,
}

#: The verbs that need no database, by name (module ``awa/cli/<name>.py``); listed after
#: ``VERBS`` in help.
OFFLINE_VERBS: dict[str, OfflineVerb] = {"completion": completion}


def _version() -> str:
    try:
        return importlib.metadata.version("awa-py")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="awa", description=__doc__)
    parser.add_argument("--version", action="version", version=f"awa {_version()}")
    add_global_options(parser, suppress=False)
    sub = cast(Verbs, parser.add_subparsers(dest="command", required=True, parser_class=VerbParser))
    for verb in VERBS.values():
        verb.add_parser(sub)
    for offline in OFFLINE_VERBS.values():
        offline.add_parser(sub)
    return parser


async def _dispatch(
    verb: Verb, args: argparse.Namespace, url: str, embedded: bool, stop: StopSignals
) -> int | None:
    """Run the verb; ``None`` when a signal cancelled it. The first signal sets
    ``stop.stop`` (the long-running verbs shut down gracefully on it) and cancels a verb
    that does not wait for it; a second signal cancels any verb."""
    stop.stop = anyio.Event()
    code: int | None = None
    async with anyio.create_task_group() as tg:

        def wake(signum: int) -> None:
            assert stop.stop is not None
            stop.stop.set()
            if stop.listening == 0 or len(stop.received) > 1:
                tg.cancel_scope.cancel()

        stop.attach(wake)
        try:
            if stop.pending:  # arrived before the loop could hear it
                wake(stop.received[0])
            code = await verb.run(args, url, embedded)
        finally:
            stop.detach()
    return code


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, stop: StopSignals) -> int:
    offline = OFFLINE_VERBS.get(args.command)
    if offline is not None:
        return offline.run_offline(parser, args)
    verb = VERBS.get(args.command)
    if verb is None:
        raise ConfigError(f"unknown command {args.command!r}")
    with resolve_database(args.database_url, args.data_dir) as (url, embedded):
        stop.check()  # a signal during the embedded server's start: stop it now
        code = anyio.run(_dispatch, verb, args, url, embedded, stop)
    if code is None:
        return 128 + stop.received[0]
    return code


def _awa_error(group: BaseExceptionGroup[BaseException]) -> AwaError | None:
    """The awa error a task group wrapped (a port in use inside ``awa dashboard``), when
    that is all the group holds; anything else is a bug and keeps its traceback."""
    matched, rest = group.split(AwaError)
    if matched is None or rest is not None:
        return None
    leaf: BaseException = matched
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf if isinstance(leaf, AwaError) else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        setup_logging(args)  # text or JSON lines (--log-format, AWA_LOG_FORMAT)
    except AwaError as exc:
        print(f"awa: error: {exc}", file=sys.stderr)
        return 2
    with handled_signals() as stop:
        try:
            return _run(parser, args, stop)
        except AwaError as exc:
            error: AwaError | None = exc
        except BaseExceptionGroup as group:
            error = _awa_error(group)
            if error is None:
                raise
        except KeyboardInterrupt:
            return 128 + (stop.received[0] if stop.received else signal.SIGINT)
    print(f"awa: error: {error}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
