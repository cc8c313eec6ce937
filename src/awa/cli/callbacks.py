"""``awa callbacks serve``: the callback ingress (``awa.web``), one endpoint that resolves
parked jobs, served until Ctrl-C."""

from __future__ import annotations

import argparse
import os

import anyio

from awa.cli.args import Verbs, port_arg, positive_int
from awa.cli.serving import until_signal
from awa.client import Client
from awa.web import callback_app, serve

__all__ = ["add_parser", "run"]


def add_parser(sub: Verbs) -> None:
    callbacks = sub.add_parser("callbacks", help="the callback ingress (HTTP)")
    verbs = callbacks.add_subparsers(dest="callbacks_command", required=True)
    cb_serve = verbs.add_parser(
        "serve",
        help="serve POST /<callback-id> to resolve parked jobs",
        description="Serve the callback ingress: one endpoint, POST /<callback-id>, that "
        "completes, fails, retries or extends a parked job's callback. Authenticated by "
        "the per-callback token; with AWA_CALLBACK_SECRET set (comma-separated for a "
        "rotation), every request must also carry a valid Awa-Signature (HMAC-SHA256).",
    )
    cb_serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    cb_serve.add_argument(
        "--port", type=port_arg, default=8788, help="port (default 8788; 0 picks a free one)"
    )
    cb_serve.add_argument(
        "--max-body",
        type=positive_int,
        default=1 << 20,
        help="largest request body accepted, in bytes (default 1 MiB)",
    )


async def run(args: argparse.Namespace, url: str, embedded: bool) -> int:
    raw_secret = os.environ.get("AWA_CALLBACK_SECRET", "")
    secrets = [s for s in (part.strip() for part in raw_secret.split(",")) if s]
    client = Client(url)
    async with client, anyio.create_task_group() as tg:
        ingress = callback_app(client.callbacks, secret=secrets or None, max_body=args.max_body)
        bound = await tg.start(serve, ingress, args.host, args.port)
        signed = "signed requests only" if secrets else "token auth (no AWA_CALLBACK_SECRET)"
        print(f"callback ingress on http://{args.host}:{bound}/ ({signed})", flush=True)
        await until_signal()
        tg.cancel_scope.cancel()
    return 0
