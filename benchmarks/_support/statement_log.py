"""Attributing a PostgreSQL statement log to the code that issued each statement.

With ``log_statement = 'all'`` the server logs every statement with its backend pid; this
parses that log, groups statements into transactions, and names each one after the named
query (``src/awa/sql``) or literal it matches, so a benchmark can say "this many
transactions per second at idle, and from where" (``lanes.py``'s idle scenario).
"""

from __future__ import annotations

import difflib
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _support  # noqa: F401 - puts this checkout's src/ first on sys.path
from awa.db.queries import load_queries

#: Where each named query (``src/awa/sql``) or literal statement is issued from at idle.
SOURCE_OF = {
    "claim_batch": "dispatcher: claim poll (poll_interval)",
    "heartbeat": "worker heartbeat",
    "touch_runtime": "runtime liveness row (liveness_interval)",
    "register_runtime": "runtime start",
    "promote_due": "branch promote_scheduled",
    "next_due_at": "branch promote_scheduled",
    "next_due_in": "branch promote_scheduled",
    "find_orphaned_running": "branch rescue_stale_heartbeats",
    "find_stale_heartbeats": "branch rescue_stale_heartbeats",
    "find_rescuable_running": "branch rescue_stale_heartbeats",
    "find_expired_deadlines": "branch rescue_expired_deadlines",
    "find_expired_callbacks": "branch rescue_expired_callbacks",
    "rescue_retry": "rescue (any rescue branch)",
    "queue_stats_refresh": "branch queue_stats",
    "age_priorities": "branch priority_aging",
    "delete_expired_history": "branch cleanup",
    "gc_runtimes": "branch cleanup",
    "gc_unique_keys": "branch cleanup",
    "ring_state": "branch rotate",
    "slot_is_empty": "branch rotate",
    "slot_is_expired": "branch rotate",
    "advance_ring": "branch rotate",
    "refresh_admin_metadata": "branch refresh_admin_metadata",
    "write_health": "leader: health writer (health_interval)",
    "record_leader": "leader: record leadership",
    "get_leader": "leader: read leadership",
    "find_abandoned_running": "startup recovery",
}

#: Statements that are not named queries, by a distinctive fragment.
LITERALS = (
    ("pg_advisory_unlock_all()", "pool reset"),
    ("RESET ALL", "pool reset"),
    ("CLOSE ALL", "pool reset"),
    ("UNLISTEN *", "pool reset"),
    ("AND granted AND pid = pg_backend_pid()", "leader: watchdog check (leader_check_interval)"),
    ("pg_try_advisory_lock", "leader: election attempt (election_interval)"),
    ("pg_advisory_lock($1, hashtext", "runtime presence lock"),
    ("pg_advisory_unlock($1)", "leader: release"),
    ("LISTEN ", "LISTEN/UNLISTEN"),
    ("TRUNCATE awa.jobs_done_", "branch rotate"),
    ("current_setting('jit')", "new connection: asyncpg type introspection"),
    ("set_config('jit'", "new connection: asyncpg type introspection"),
    ("typeinfo_tree", "new connection: asyncpg type introspection"),
)

_LOG_LINE = re.compile(r"^.*? \[(\d+)\] ([A-Z0-9]+):  (.*)$")


def _norm(sql: str) -> str:
    return " ".join(sql.split()).rstrip(";").strip()


_PGSS_LIST = re.compile(r"\(\s*\$\d+\s*/\*, \.\.\. \*/\s*\)")
_LITERAL = re.compile(r"'(?:[^']|'')*'|\$\d+|\b\d+(?:\.\d+)?\b")
_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)*\s*\)")
# EXTRACT(epoch FROM x) is extract('epoch', x): pg_stat_statements shows the field as $n.
_EXTRACT = re.compile(r"extract\(\s*(?:\w+|\?)\s+FROM", re.IGNORECASE)


def _shape(sql: str) -> str:
    """A statement with every constant and parameter replaced by ``?`` and lists collapsed,
    so a named query matches ``pg_stat_statements``' normalised text of it."""
    text = _PGSS_LIST.sub("(?)", _norm(sql))
    return _EXTRACT.sub("extract(? FROM", _LIST.sub("(?)", _LITERAL.sub("?", text)))


class StatementNamer:
    """Maps a statement's text (as logged, or as normalised by ``pg_stat_statements``) to
    its named query (``src/awa/sql``) or a literal's label."""

    def __init__(self) -> None:
        queries = load_queries().values()
        self.by_text = {_norm(q.sql): q.name for q in queries}
        self.by_shape = {_shape(q.sql): q.name for q in queries}

    def name(self, sql: str) -> str:
        text = _norm(sql)
        shape = _shape(text)
        found = self.by_text.get(text) or self.by_shape.get(shape)
        if found is None and len(shape) > 40:  # a normalisation this file does not know
            close = difflib.get_close_matches(shape, list(self.by_shape), n=1, cutoff=0.92)
            found = self.by_shape[close[0]] if close else None
        if found is not None:
            return found
        if text.upper() in ("BEGIN", "COMMIT", "ROLLBACK"):
            return "BEGIN/COMMIT (explicit transaction)"
        for fragment, label in LITERALS:
            if fragment in text:
                return label
        return "sql: " + text[:70]

    @staticmethod
    def source(name: str) -> str:
        if name.startswith("cron_"):
            return "branch cron_evaluate / cron_sync"
        return SOURCE_OF.get(name, name)


def parse_statement_log(text: str) -> list[tuple[int, str]]:
    """(backend pid, statement) per ``log_statement`` entry, in log order. Handles simple
    queries (``statement:``), the extended protocol (``execute <name>:``) and multi-line
    statements (continuation lines start with a tab)."""
    entries: list[tuple[int, list[str]]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("\t"):
            if current is not None:
                current.append(line[1:])
            continue
        current = None
        m = _LOG_LINE.match(line)
        if m is None or m[2] != "LOG":
            continue
        msg = m[3]
        if msg.startswith("statement: "):
            sql = msg[len("statement: ") :]
        elif msg.startswith("execute ") and ": " in msg:
            sql = msg.split(": ", 1)[1]
        else:
            continue
        current = [sql]
        entries.append((int(m[1]), current))
    return [(pid, "\n".join(parts)) for pid, parts in entries]


def group_transactions(entries: Sequence[tuple[int, str]]) -> list[tuple[int, list[str]]]:
    """Statements per backend grouped into transactions: BEGIN … COMMIT/ROLLBACK is one, any
    other statement (a multi-statement simple query included) is its own implicit one."""
    open_tx: dict[int, list[str]] = {}
    out: list[tuple[int, list[str]]] = []
    for pid, sql in entries:
        words = sql.split(None, 1)
        head = words[0].rstrip(";").upper() if words else ""
        if head in ("BEGIN", "START"):
            open_tx[pid] = []
        elif head in ("COMMIT", "ROLLBACK", "END", "ABORT"):
            out.append((pid, open_tx.pop(pid, [])))
        elif pid in open_tx:
            open_tx[pid].append(sql)
        else:
            out.append((pid, [sql]))
    return out


def attribute_transactions(
    txs: Sequence[tuple[int, list[str]]], namer: StatementNamer, seconds: float
) -> list[dict[str, Any]]:
    """Transactions per source; a pool reset (asyncpg's ``RESET ALL`` batch on release) is
    charged to the source whose statement ran just before it on the same backend."""
    work: Counter[str] = Counter()
    resets: Counter[str] = Counter()
    queries: dict[str, Counter[str]] = defaultdict(Counter)
    last_source: dict[int, str] = {}
    for pid, stmts in txs:
        names = [namer.name(s) for s in stmts] or ["(transaction begun before the window)"]
        if names[0] == "pool reset":
            resets[last_source.get(pid, "(unknown)")] += 1
            continue
        source = namer.source(names[0])
        work[source] += 1
        queries[source][" + ".join(dict.fromkeys(names))] += 1
        last_source[pid] = source
    rows: list[dict[str, Any]] = []
    for source in set(work) | set(resets):
        total = work[source] + resets[source]
        rows.append(
            {
                "source": source,
                "tx": total,
                "tx_per_s": round(total / seconds, 3),
                "of_which_pool_resets": resets[source],
                "statements": dict(queries[source]),
            }
        )
    rows.sort(key=lambda r: (-r["tx"], r["source"]))
    return rows


def read_segment(path: Path, start: int, stop: int) -> str:
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(stop - start).decode(errors="replace")
