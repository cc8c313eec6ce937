"""One worker process as the supervisor sees it (ADR 028): how many to run, the ``awa``
arguments it is started with, and how its end is described in a log line or an error."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence

from awa.errors import ValidationError

__all__ = ["describe_exit", "resolve_processes", "worker_argv"]


def resolve_processes(value: int | None) -> int:
    """``None`` or ``0``: one per core (``os.cpu_count()``); otherwise at least 1."""
    if value is None or value == 0:
        return os.cpu_count() or 1
    if value < 0:
        raise ValidationError("processes", value, "must be 0 (one per core) or more")
    return value


def worker_argv(
    app: str,
    *,
    queues: Mapping[str, int] | None = None,
    migrate: bool = False,
    maintenance: bool = True,
    shutdown_grace: float | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The ``awa`` arguments of one child: ``worker --app APP [--queue NAME=N ...] ...``."""
    module, _, attribute = app.partition(":")
    if not module or not attribute:
        raise ValidationError("app", app, "expected module:attribute of an awa.Client")
    argv = ["worker", "--app", app]
    for name, limit in (queues or {}).items():
        argv += ["--queue", f"{name}={limit}"]
    if migrate:
        argv.append("--migrate")
    if not maintenance:
        argv.append("--no-maintenance")
    if shutdown_grace is not None:
        argv += ["--shutdown-grace", str(shutdown_grace)]
    return argv + list(extra_args)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
