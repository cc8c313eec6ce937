"""The verbs that serve HTTP until Ctrl-C: ``awa dashboard`` (the lane-health page) and
``awa callbacks serve`` (the callback ingress). The apps themselves live in ``awa.web``."""

from __future__ import annotations

import argparse
import os
import signal

import anyio

from awa.cli.args import Verbs
from awa.client import Client
from awa.web import callback_app, dashboard_app, serve

__all__ = ["add_callbacks_parser", "add_dashboard_parser", "run_callbacks", "run_dashboard"]


def add_dashboard_parser(sub: Verbs) -> None:
    dash = sub.add_parser(
        "dashboard",
        help="serve a live lane-health and queue page (reads what the leader persists)",
    )
    dash.add_argument("--host", default="127.0.0.1")
    dash.add_argument("--port", type=int, default=8787)


def add_callbacks_parser(sub: Verbs) -> None:
    callbacks = sub.add_parser("callbacks", help="the callback ingress (HTTP)")
    callbacks_sub = callbacks.add_subparsers(dest="callbacks_command", required=True)
    cb_serve = callbacks_sub.add_parser(
        "serve",
        help="serve POST /<callback-id> to resolve parked jobs",
        description="Serve the callback ingress: one endpoint, POST /<callback-id>, that "
        "completes, fails, retries or extends a parked job's callback. Authenticated by "
        "the per-callback token; with AWA_CALLBACK_SECRET set (comma-separated for a "
        "rotation), every request must also carry a valid Awa-Signature (HMAC-SHA256).",
    )
    cb_serve.add_argument("--host", default="127.0.0.1")
    cb_serve.add_argument("--port", type=int, default=8788)
    cb_serve.add_argument("--max-body", type=int, default=1 << 20, help="bytes (default 1 MiB)")


async def _until_signal() -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            break


async def run_callbacks(args: argparse.Namespace, url: str) -> int:
    raw_secret = os.environ.get("AWA_CALLBACK_SECRET", "")
    secrets = [s for s in (part.strip() for part in raw_secret.split(",")) if s]
    client = Client(url)
    async with client, anyio.create_task_group() as tg:
        ingress = callback_app(client.callbacks, secret=secrets or None, max_body=args.max_body)
        bound = await tg.start(serve, ingress, args.host, args.port)
        signed = "signed requests only" if secrets else "token auth (no AWA_CALLBACK_SECRET)"
        print(f"callback ingress on http://{args.host}:{bound}/ ({signed})", flush=True)
        await _until_signal()
        tg.cancel_scope.cancel()
    return 0


async def run_dashboard(args: argparse.Namespace, url: str) -> int:
    async with anyio.create_task_group() as tg:
        bound = await tg.start(serve, dashboard_app(url), args.host, args.port)
        print(f"awa dashboard on http://{args.host}:{bound}/ (Ctrl-C to stop)", flush=True)
        await _until_signal()
        tg.cancel_scope.cancel()
    return 0
