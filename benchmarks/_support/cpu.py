"""CPU accounting: this process, the benchmark's PostgreSQL, and the rest of the machine
(neighbours are noise), plus waiting for a quiet machine before a timed phase."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any


def cpu_busy_snapshot() -> tuple[float, float] | None:
    """(busy, total) jiffies over all CPUs from /proc/stat; None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def cpu_busy_since(before: tuple[float, float] | None) -> float | None:
    """Machine-wide CPU busy fraction (0..1 of all cores) since ``before``."""
    after = cpu_busy_snapshot()
    if before is None or after is None or after[1] == before[1]:
        return None
    return round((after[0] - before[0]) / (after[1] - before[1]), 3)


def process_tree_cpu_seconds(root_pid: int | None) -> float | None:
    """User+system CPU seconds of ``root_pid`` and its live children (Linux /proc)."""
    if root_pid is None:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        pid, ppid = int(entry), int(fields[1])
        if root_pid in (pid, ppid):
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def server_cpu_seconds(server_pid: int | None) -> float | None:
    """CPU seconds of a server and all its backends, including backends that already
    exited: the postmaster reaps them, so their time is in its ``cutime``/``cstime``
    (``process_tree_cpu_seconds`` sees only live processes). Linux /proc only."""
    if server_pid is None:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    try:
        with open(f"/proc/{server_pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    reaped = (int(fields[13]) + int(fields[14])) / tick
    live = process_tree_cpu_seconds(server_pid)
    return None if live is None else live + reaped


class CpuMeter:
    """CPU used during a phase: this process, the benchmark's PostgreSQL (embedded only)
    and everything else on the machine (``other_cores``: neighbours, i.e. noise)."""

    def __init__(self, server_pid: int | None) -> None:
        self._server_pid = server_pid

    def __enter__(self) -> CpuMeter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> CpuMeter:
        self._wall = time.perf_counter()
        self._self = _self_cpu()
        self._pg = process_tree_cpu_seconds(self._server_pid)
        self._busy = cpu_busy_snapshot()
        return self

    def stop(self) -> None:
        self.wall = time.perf_counter() - self._wall
        self.client_cpu_s = _self_cpu() - self._self
        pg = process_tree_cpu_seconds(self._server_pid)
        self.pg_cpu_s = None if pg is None or self._pg is None else pg - self._pg
        self.busy = cpu_busy_since(self._busy)

    def summary(self) -> dict[str, Any]:
        cores = os.cpu_count() or 1
        out: dict[str, Any] = {
            "client_cpu_s": round(self.client_cpu_s, 3),
            "client_cores": round(self.client_cpu_s / self.wall, 2),
            "machine_cpu_busy": self.busy,
        }
        if self.pg_cpu_s is not None:
            out["postgres_cpu_s"] = round(self.pg_cpu_s, 3)
            out["postgres_cores"] = round(self.pg_cpu_s / self.wall, 2)
            if self.busy is not None:
                other = self.busy * cores - (self.client_cpu_s + self.pg_cpu_s) / self.wall
                out["other_cores"] = round(max(0.0, other), 2)
        return out


def _self_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def wait_for_quiet(max_wait: float, threshold: float = 0.15, window: float = 1.0) -> float:
    """Wait (up to ``max_wait`` s) for a ``window`` in which the machine is less than
    ``threshold`` busy, so a shared machine's neighbours distort less; return the wait."""
    start = time.perf_counter()
    while time.perf_counter() - start < max_wait:
        before = cpu_busy_snapshot()
        if before is None:
            break
        await asyncio.sleep(window)
        busy = cpu_busy_since(before)
        if busy is not None and busy < threshold:
            break
    return round(time.perf_counter() - start, 1)


def rss_mb() -> float | None:
    """This process's resident set size in MiB (Linux ``/proc``); None elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def own_cpu_seconds() -> float:
    """User plus system CPU seconds of this process so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
