"""Loading the user's application (``--app module:attribute``) for the verbs that run it,
and the client-backed ``Admin`` the verbs that steer jobs run over.

Every way the spec can be wrong is a ``ConfigError`` (one ``awa: error:`` line), never an
import traceback: the hostile CLI tests feed it garbage.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Awaitable, Callable

from awa.admin import Admin
from awa.client import Client
from awa.errors import ConfigError

__all__ = ["load_app", "maintenance_client", "with_admin"]


def _cwd_on_path() -> str:
    """Put the working directory first on ``sys.path``, as uvicorn and ``python -m`` do:
    ``awa worker --app myapp.jobs:client`` run from the app's folder must find ``myapp``,
    while the ``awa`` script's own ``sys.path[0]`` is its ``bin`` directory. Returns it,
    for the error message when the import still fails."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    return cwd


def load_app(spec: str) -> Client:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"--app expects module:attribute, got {spec!r}")
    if module_name.startswith("."):
        raise ConfigError(
            f"--app {spec!r}: relative module names have no package to resolve against; "
            "give the absolute module path (package.module:attribute)"
        )
    cwd = _cwd_on_path()
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = getattr(exc, "name", None)
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise ConfigError(
                f"--app {spec!r}: cannot import module {module_name!r} from {cwd} "
                f"(the working directory, then the installed packages): {exc}"
            ) from exc
        # The module was found; something it imports was not.
        raise ConfigError(f"--app {spec!r}: importing {module_name!r} failed: {exc}") from exc
    app = getattr(module, attribute, None)
    if not isinstance(app, Client):
        raise ConfigError(f"--app {spec!r}: {attribute!r} is not an awa.Client")
    return app


def maintenance_client(args: argparse.Namespace, url: str) -> Client:
    """The application's client when ``--app`` is given (its declarations get published),
    else a bare client (pool only)."""
    if args.app:
        client = load_app(args.app)
        client.set_database_url(url)
        return client
    return Client(url)


async def with_admin(url: str, body: Callable[[Admin], Awaitable[int]]) -> int:
    """Run ``body`` over a connected client's pool (schema version checked)."""
    async with Client(url) as client:
        return await body(Admin.of(client))
