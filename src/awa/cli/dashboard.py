"""``awa dashboard``: serve the operator console (``awa.web.console_app``) until Ctrl-C.

It refuses to start when the database cannot be reached. It binds 127.0.0.1 unless told
otherwise, and is read-only unless given an operator token (``--token`` or
``AWA_CONSOLE_TOKEN``; the environment keeps it out of ``ps``). It reads what the
maintenance leader persists and runs no maintenance itself. ADR 031."""

from __future__ import annotations

import argparse
import os

import anyio

from awa.cli.args import Verbs, port_arg, seconds_arg
from awa.cli.serving import until_signal
from awa.db import connect
from awa.web import console_app, serve

__all__ = ["add_parser", "run"]

TOKEN_ENV = "AWA_CONSOLE_TOKEN"


def add_parser(sub: Verbs) -> None:
    dash = sub.add_parser(
        "dashboard",
        help="serve the operator console: lanes, queues, jobs (read-only without --token)",
    )
    dash.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    dash.add_argument(
        "--port", type=port_arg, default=8787, help="port (default 8787; 0 picks a free one)"
    )
    dash.add_argument(
        "--token",
        default=None,
        help=f"operator token that unlocks actions (pause, retry, cancel); default "
        f"${TOKEN_ENV}, else read-only",
    )
    dash.add_argument(
        "--health-interval",
        type=seconds_arg,
        default=None,
        help="override the health interval in seconds (health older than twice it is "
        "shown STALE); default: the one the leader persisted, else 5",
    )


async def run(args: argparse.Namespace, url: str, embedded: bool) -> int:
    token = args.token or os.environ.get(TOKEN_ENV) or None
    # Reach the database once before serving: a console that answers every page with 503
    # hides a wrong URL behind a running process (the CLI says so in one line instead).
    await (await connect(url)).close()
    app = console_app(url, token=token, health_interval=args.health_interval)
    mode = "operator token required for actions" if token else "read-only"
    async with anyio.create_task_group() as tg:
        bound = await tg.start(serve, app, args.host, args.port)
        print(f"awa dashboard on http://{args.host}:{bound}/ ({mode}; Ctrl-C to stop)", flush=True)
        await until_signal()
        tg.cancel_scope.cancel()
    return 0
