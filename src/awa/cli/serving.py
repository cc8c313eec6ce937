"""What the long-running verbs share: run a ``Runtime`` (or an HTTP app) until SIGINT or
SIGTERM, serving health and metrics when asked. ``awa worker`` and ``awa maintenance run``
use ``run_until_signal``; ``awa dashboard`` and ``awa callbacks serve`` use ``until_signal``."""

from __future__ import annotations

import argparse
import logging
import os
import signal

import anyio

from awa.cli import signals
from awa.runtime import Runtime
from awa.telemetry import configure
from awa.web import health_app, serve

__all__ = ["run_until_signal", "until_signal"]

log = logging.getLogger("awa.cli")

#: OTLP export is set up only when one of these says where to send (or --metrics-port).
_OTLP_ENDPOINT_VARS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)


async def until_signal() -> int | None:
    """Return the first SIGINT or SIGTERM of this CLI call (``awa.cli.signals`` owns the
    handlers, so a second signal, or one that arrives before this wait, cancels the verb
    instead). Without handlers (``main`` outside the main thread) wait until cancelled."""
    state = signals.current()
    if state is None or state.stop is None:
        await anyio.sleep_forever()
        return None
    state.listening += 1
    try:
        await state.stop.wait()
    finally:
        state.listening -= 1
    return state.received[0] if state.received else None


async def run_until_signal(
    runtime: Runtime, banner: str, args: argparse.Namespace | None = None
) -> None:
    """Start ``runtime``, print ``banner``, serve its health endpoint if asked, and shut
    down gracefully on SIGINT/SIGTERM."""
    metrics_port = getattr(args, "metrics_port", None)
    otlp = any(os.environ.get(v) for v in _OTLP_ENDPOINT_VARS)
    if metrics_port is None and not otlp:
        await _serve_runtime(runtime, banner, args)
        return
    metrics_host = getattr(args, "metrics_host", None) or "127.0.0.1"
    telemetry = await anyio.to_thread.run_sync(
        lambda: configure(prometheus_port=metrics_port, prometheus_host=metrics_host)
    )
    if telemetry.prometheus_address is not None:
        host, port = telemetry.prometheus_address
        print(f"Prometheus metrics on http://{host}:{port}/metrics", flush=True)
    try:
        await _serve_runtime(runtime, banner, args)
    finally:
        await anyio.to_thread.run_sync(telemetry.shutdown)


async def _serve_runtime(runtime: Runtime, banner: str, args: argparse.Namespace | None) -> None:
    async with anyio.create_task_group() as tg:
        health_port = getattr(args, "health_port", None)
        if args is not None and health_port is not None:
            bound = await tg.start(serve, health_app(runtime), args.health_host, health_port)
            print(f"health endpoint on http://{args.health_host}:{bound}/health", flush=True)

        async def on_signal() -> None:
            signum = await until_signal()
            name = signal.Signals(signum).name if signum is not None else "a stop request"
            log.warning("received %s: shutting down gracefully", name)
            await runtime.shutdown()

        tg.start_soon(on_signal)
        await runtime.start()
        print(banner, flush=True)
        await runtime.run_until_stopped()
        tg.cancel_scope.cancel()
