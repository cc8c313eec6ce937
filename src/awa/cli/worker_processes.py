"""``awa worker --processes N``: the command line's side of ``awa.runtime.processes``
(ADR 028).

With N > 1 the ``awa worker`` process becomes a supervisor: it does not load the
application or connect; it starts N children running this same command line (minus
``--processes``), passes SIGINT/SIGTERM on to them and waits for their graceful stop. The
embedded PostgreSQL, when there is one, stays this process's: the children get its URL.

The children's arguments are rebuilt from the parsed options by walking the worker
parser's own actions, so an option added to ``awa worker`` (or a global one) reaches them
without a change here; port options are offset per child (PORT, PORT+1, ...) because N
processes cannot all listen on one port.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from awa.cli import signals
from awa.cli.args import port_arg
from awa.cli.serving import until_signal
from awa.errors import ConfigError
from awa.runtime.processes import STOP_MARGIN, WorkerProcesses
from awa.runtime.supervisor_pipe import supervisor_gone
from awa.runtime.worker_command import worker_argv

__all__ = ["add_process_options", "processes_arg", "supervise", "watching_supervisor"]

log = logging.getLogger("awa.cli")

#: Options the supervisor sets for its children itself, or that only it understands.
_NOT_PASSED_ON = {"help", "processes", "supervisor_fd", "database_url", "data_dir", "migrate"}


def processes_arg(text: str) -> int:
    """``--processes N``: a count, or ``0``/``auto`` for one per core."""
    if text.strip().lower() == "auto":
        return os.cpu_count() or 1
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of processes or 'auto', got {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (one per core) or more, got {value}")
    return value if value > 0 else os.cpu_count() or 1


def add_process_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--processes",
        type=processes_arg,
        default=1,
        metavar="N",
        help="run N worker processes under one supervisor (0 or auto: one per core; "
        "default 1, this process alone)",
    )
    # The read end of the supervisor's liveness pipe; set by the supervisor only.
    p.add_argument("--supervisor-fd", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(worker_parser=p)


def _text(action: argparse.Action, value: Any, slot: int) -> str:
    if isinstance(value, tuple):  # --queue NAME=CONCURRENCY, parsed to (name, limit)
        return "=".join(str(v) for v in value)
    if action.type is port_arg and value:
        return str(value + slot)
    return str(value)


def child_argv(args: argparse.Namespace, migrate: bool, slot: int) -> list[str]:
    """The ``awa`` arguments of child ``slot``: ``worker`` and every option given."""
    parser: argparse.ArgumentParser = args.worker_parser
    argv = ["worker"]
    for action in parser._actions:
        if not action.option_strings or action.dest in _NOT_PASSED_ON:
            continue
        value = getattr(args, action.dest, None)
        flag = max(action.option_strings, key=len)
        if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
            if value == action.const:
                argv.append(flag)
        elif isinstance(action, argparse._AppendAction):
            for item in value or ():
                argv += [flag, _text(action, item, slot)]
        elif isinstance(action, argparse._StoreAction):
            if value is not None:
                argv += [flag, _text(action, value, slot)]
        elif value not in (None, action.default):
            raise ConfigError(f"{flag} cannot be passed on to worker processes yet")
    return [*argv, "--migrate"] if migrate else argv


async def supervise(args: argparse.Namespace, url: str, embedded: bool) -> int:
    """Run ``args.processes`` children until SIGINT/SIGTERM; 0 after a clean stop."""
    count: int = args.processes
    worker_argv(args.app)  # a malformed --app fails here once, not in N crash-looping children
    # Every child migrates (under the migration lock: one applies, the others find it done).
    migrate = bool(args.migrate or embedded)
    env = {**os.environ, "AWA_DATABASE_URL": url}
    supervisor = WorkerProcesses(
        [child_argv(args, migrate, slot) for slot in range(count)],
        env=env,
        stop_timeout=args.shutdown_grace + STOP_MARGIN,
    )
    async with anyio.create_task_group() as tg:

        async def on_signal() -> None:
            signum = await until_signal()
            name = signal.Signals(signum).name if signum is not None else "a stop request"
            log.warning("received %s: stopping %d worker processes", name, count)
            supervisor.request_stop(signum if signum is not None else signal.SIGTERM)

        tg.start_soon(on_signal)
        print(
            f"supervisor {os.getpid()} running {count} worker processes for {args.app} "
            "(Ctrl-C to stop)",
            flush=True,
        )
        await supervisor.run()
        tg.cancel_scope.cancel()
    return 0 if supervisor.clean else 1


@asynccontextmanager
async def watching_supervisor(fd: int | None) -> AsyncIterator[None]:
    """In a child (``--supervisor-fd``): when the supervisor is gone, stop as if it had
    sent SIGTERM. Without ``fd``, nothing."""
    if fd is None:
        yield
        return
    try:
        os.fstat(fd)
    except OSError:
        raise ConfigError(f"--supervisor-fd {fd} is not an open file descriptor") from None
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            await supervisor_gone(fd)
            log.warning("the supervisor is gone: shutting down")
            state = signals.current()
            if state is not None:
                state.handle(signal.SIGTERM, None)
            else:
                os.kill(os.getpid(), signal.SIGTERM)

        tg.start_soon(watch)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()
