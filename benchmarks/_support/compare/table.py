"""``compare.py``'s table: every figure for every system, the ratio ours ÷ peer for each
peer, and the aims of issue 16 (and issue 8's crash aim), checked on the same run.

Why a table of ratios: absolute figures on a shared 2-core machine move with the
neighbours; the systems run alternately under the same load, so their ratios are what one
run can vouch for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, TypeGuard

from _support.compare.systems import SYSTEMS
from _support.machine import describe_machine

__all__ = ["ROWS", "compare_table", "render"]

Values = dict[str, Any]
Results = dict[str, dict[str, Any]]

#: The peers, in the order of their ratio columns.
PEERS = ("pgqueuer", "awa069")


def _num(v: Any) -> TypeGuard[float]:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _bulk(v: Values, r: Results) -> bool | None:
    peers = [v[p] for p in PEERS if _num(v.get(p))]
    if not _num(v.get("project")) or not peers:
        return None
    return bool(v["project"] >= 2 * max(peers))


def _drain(v: Values, r: Results) -> bool | None:
    ours, pgq = v.get("project"), v.get("pgqueuer")
    return bool(ours >= 3 * pgq) if _num(ours) and _num(pgq) else None


def _cpu(v: Values, r: Results) -> bool | None:
    ours = v.get("project")
    return bool(ours <= 0.15) if _num(ours) else None


def _pickup(v: Values, r: Results) -> bool | None:
    ours, pgq = v.get("project"), v.get("pgqueuer")
    if not _num(ours) or not _num(pgq):
        return None
    return bool(ours <= 0.5 * pgq and ours <= 5.0)


def _promotion_p99(v: Values, r: Results) -> bool | None:
    ours = v.get("project")
    return bool(ours <= 10.0) if _num(ours) else None


def _promotion_max(v: Values, r: Results) -> bool | None:
    ours, p99 = v.get("project"), r.get("promotion", {}).get("project", {}).get("p99_ms")
    return bool(ours <= 2 * p99) if _num(ours) and _num(p99) else None


def _crash(v: Values, r: Results) -> bool | None:
    ours = v.get("project")
    if not _num(ours):
        return None
    # A peer that did not finish within the timeout (None) is no better than ours.
    return all(not _num(v.get(p)) or ours <= v[p] for p in PEERS if p in v)


@dataclasses.dataclass(frozen=True)
class Row:
    scenario: str
    figure: str
    label: str
    higher_is_better: bool
    aim: str | None = None
    check: Callable[[Values, Results], bool | None] | None = None


ROWS: tuple[Row, ...] = (
    Row("bulk_enqueue", "jobs_per_s", "bulk enqueue, jobs/s", True, ">= 2x best peer", _bulk),
    Row("drain", "jobs_per_s", "drain, completed jobs/s", True, ">= 3x pgqueuer", _drain),
    Row("drain", "handled_per_s", "drain, handlers run/s", True),
    Row("drain", "client_cpu_us_per_job", "drain, adapter CPU µs/job", False),
    Row(
        "drain",
        "machine_cpu_ms_per_job",
        "drain, machine CPU ms/job",
        False,
        "<= 0.15 ms",
        _cpu,
    ),
    Row("pickup", "p50_ms", "pickup latency p50, ms", False),
    Row("pickup", "p99_ms", "pickup latency p99, ms", False, "<= 0.5x pgq, <= 5 ms", _pickup),
    Row("pickup", "insert_p50_ms", "  of which the insert call p50", False),
    Row("pickup", "insert_p99_ms", "  of which the insert call p99", False),
    Row("pickup", "after_insert_p50_ms", "  after the insert returned p50", False),
    Row("pickup", "after_insert_p99_ms", "  after the insert returned p99", False),
    Row("promotion", "p50_ms", "promotion lateness p50, ms", False),
    Row("promotion", "p99_ms", "promotion lateness p99, ms", False, "<= 10 ms", _promotion_p99),
    Row(
        "promotion",
        "max_ms",
        "promotion lateness max, ms",
        False,
        "<= 2x our p99",
        _promotion_max,
    ),
    Row("crash", "rescue_s", "crash rescue, s", False, "<= every peer", _crash),
    Row("idle", "net_tx_per_s", "idle worker, net tx/s", False),
)


def compare_table(results: Results, systems: Sequence[str]) -> list[dict[str, Any]]:
    """One row per figure measured: each system's value, ``ours / peer`` per peer, and
    whether the aim is met (``None``: a number it needs is missing)."""
    rows = []
    for spec in ROWS:
        per_system = results.get(spec.scenario)
        if not per_system:
            continue
        values = {s: per_system.get(s, {}).get(spec.figure) for s in systems}
        row: dict[str, Any] = {
            "scenario": spec.scenario,
            "figure": spec.figure,
            "label": spec.label,
            "higher_is_better": spec.higher_is_better,
            "values": values,
            "ratios": {},
        }
        ours = values.get("project")
        for peer in PEERS:
            theirs = values.get(peer)
            if peer in values and _num(ours) and _num(theirs) and theirs:
                row["ratios"][f"ours_over_{peer}"] = round(ours / theirs, 3)
        if spec.aim is not None and spec.check is not None:
            row["aim"] = spec.aim
            row["aim_met"] = spec.check(values, results)
        rows.append(row)
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) < 1:
            return f"{v:.3f}"
        return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


_SHORT = {"project": "ours", "pgqueuer": "pgqueuer", "awa069": "Awa 0.6.9"}


def render(payload: dict[str, Any]) -> str:
    """The table as text, then the neighbour load of every run."""
    m = payload["machine"]
    systems = payload["systems_run"]
    peers = [p for p in PEERS if p in systems]
    head = f"  {'figure':<28}" + "".join(f" {_SHORT[s]:>10}" for s in systems)
    head += "".join(f" {'ours/' + _SHORT[p][:4]:>9}" for p in peers) + "  aim"
    lines = [
        f"awa vs {', '.join(SYSTEMS[p].label for p in peers) or 'nobody'}"
        f" ({payload['mode']}) {m['date']}",
        f"  {describe_machine(m)}",
        f"  load average at start: {m['load_average_at_start']}",
        "",
        head,
    ]
    for row in payload["comparison"]:
        aim = ""
        if "aim" in row:
            met = row["aim_met"]
            aim = f"{row['aim']}: " + ("-" if met is None else ("ok" if met else "MISSED"))
        line = f"  {row['label']:<28}"
        line += "".join(f" {_fmt(row['values'].get(s)):>10}" for s in systems)
        line += "".join(f" {_fmt(row['ratios'].get(f'ours_over_{p}')):>9}" for p in peers)
        lines.append(f"{line}  {aim}")
    lines += [
        "",
        "  neighbour load per run (other_cores: CPU used by neither system nor PostgreSQL)",
    ]
    for scenario, per_system in payload["results"].items():
        for system, r in per_system.items():
            load = r.get("load", {})
            err = f"  ERROR {r['error'][:200]}" if "error" in r else ""
            lines.append(
                f"  {scenario:<13} {SYSTEMS[system].label:<20}"
                f" other {_fmt(load.get('other_cores')):>5}"
                f"  postgres {_fmt(load.get('postgres_cores')):>5}"
                f"  client {_fmt(load.get('client_cores')):>5}  ok={r.get('ok')}{err}"
            )
    return "\n".join(lines)
