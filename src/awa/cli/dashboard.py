"""``awa dashboard``: serve the live lane-health and queue page (``awa.web``) until Ctrl-C.
It reads what the maintenance leader persists; it runs no maintenance itself."""

from __future__ import annotations

import argparse

import anyio

from awa.cli.args import Verbs, port_arg
from awa.cli.serving import until_signal
from awa.web import dashboard_app, serve

__all__ = ["add_parser", "run"]


def add_parser(sub: Verbs) -> None:
    dash = sub.add_parser(
        "dashboard",
        help="serve a live lane-health and queue page (reads what the leader persists)",
    )
    dash.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    dash.add_argument(
        "--port", type=port_arg, default=8787, help="port (default 8787; 0 picks a free one)"
    )


async def run(args: argparse.Namespace, url: str, embedded: bool) -> int:
    async with anyio.create_task_group() as tg:
        bound = await tg.start(serve, dashboard_app(url), args.host, args.port)
        print(f"awa dashboard on http://{args.host}:{bound}/ (Ctrl-C to stop)", flush=True)
        await until_signal()
        tg.cancel_scope.cancel()
    return 0
