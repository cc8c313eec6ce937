"""Bulk enqueue: jobs/s, client CPU and PostgreSQL CPU per job, optionally A/B against another
checkout and next to the peers (a script, not a test).

Each measurement does what ``compare.py``'s bulk scenario does: ``--jobs`` no-op jobs
inserted with ``client.insert_many([client.params("noop", {"i": i}) ...])``, ``--chunk``
per call, timed from building the first params to the last commit. Two kinds, alternating
per round (the order reverses every other round, so drift on a shared machine is not
charged to one side):

- ``detail``: ``_support/bulk_child.py`` in a fresh process per tree: jobs/s, the build /
  ``insert_many`` split, the client's CPU per job (``process_time`` over the timed part) and
  its PostgreSQL backends' CPU per job;
- ``compare``: ``compare.py``'s own ``bulk_enqueue`` scenario through its adapters, for this
  tree, the ``--ab`` tree and the peers (``--peers``, each in its own venv, as compare.py
  makes them), each on a fresh database.

``--ab DIR`` names another checkout (e.g. ``git archive main | tar -x -C /tmp/before``) to
measure against this one. ``--steps`` times the parts of one ``insert_many`` on their own;
``--profile`` prints a cProfile of one in-process round of this tree (top functions by own
time). Medians per tree are printed and written to ``results/bulk-insert-*.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import json
import os
import pstats
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _support  # noqa: F401 - before awa: puts this checkout's src/ first on sys.path
import awa
from _support import REPO_ROOT
from _support.cli import add_output_args, parse_scenarios
from _support.compare.runner import run_simple
from _support.compare.systems import SYSTEMS, System, ensure_venv
from _support.machine import describe_machine, machine_info
from _support.results import run_and_report
from _support.server import BenchServer, fresh_database
from awa.clock import utcnow
from awa.db import connect
from awa.db.queries import sql_text
from awa.store.copy_stream import COPY_COLUMNS, CopyEncoder

CHILD = Path(__file__).resolve().parent / "_support" / "bulk_child.py"


async def one_round(url: str, n: int, chunk: int, profile: bool) -> dict[str, float]:
    client = awa.Client(url)

    @client.handler("noop")
    async def noop(ctx: awa.JobContext) -> None:
        return None

    build = insert = 0.0
    prof = cProfile.Profile() if profile else None
    async with client:
        conn = await connect(url)
        try:
            await conn.execute("TRUNCATE awa.jobs")
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()
        if prof:
            prof.enable()
        for start in range(0, n, chunk):
            t0 = time.perf_counter()
            items = [client.params("noop", {"i": i}) for i in range(start, min(n, start + chunk))]
            t1 = time.perf_counter()
            await client.insert_many(items)
            t2 = time.perf_counter()
            build += t1 - t0
            insert += t2 - t1
        if prof:
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return {"build_s": build, "insert_s": insert, "total_jobs_per_s": n / (build + insert)}


async def steps(url: str, chunk: int) -> dict[str, float]:
    """The parts of one insert_many, each timed on its own (median of several chunks):
    reserving ids, encoding the COPY rows (client CPU only), and the COPY into ``awa.jobs``
    of the already-encoded stream (mostly PostgreSQL's work)."""
    client = awa.Client(url)
    out: dict[str, list[float]] = {"reserve": [], "encode": [], "copy": []}
    async with client:
        store = client.store
        async with store.db.acquire() as c:
            for _ in range(7):
                params = [client.params("noop", {"i": i}) for i in range(chunk)]
                async with c.transaction():
                    t0 = time.perf_counter()
                    ids = list(await c.fetchval(sql_text("reserve_job_ids"), chunk))
                    t1 = time.perf_counter()
                    encoder = CopyEncoder(utcnow())
                    data = encoder.encode_all(params, ids)
                    t2 = time.perf_counter()
                    await c.copy_to_table(
                        "jobs",
                        schema_name="awa",
                        columns=COPY_COLUMNS,
                        source=memoryview(data),  # bytes would be taken for a path
                        format="binary",
                    )
                    t3 = time.perf_counter()
                out["reserve"].append(t1 - t0)
                out["encode"].append(t2 - t1)
                out["copy"].append(t3 - t2)
    return {k: statistics.median(v) for k, v in out.items()}


def peer_python(key: str, args: argparse.Namespace) -> str:
    venv = {"pgqueuer": args.pgqueuer_venv, "awa069": args.awa_venv}[key]
    return ensure_venv(SYSTEMS[key], venv)


def tree_system(label: str, checkout: Path) -> System:
    """compare.py's project system, run from ``checkout``'s own adapter (its src/)."""
    adapter = checkout / "benchmarks" / "_support" / "compare" / "project.py"
    return dataclasses.replace(SYSTEMS["project"], key=label, label=label, adapter=adapter)


async def detail(checkout: Path, url: str, args: argparse.Namespace) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        str(checkout),
        url,
        str(args.jobs),
        str(args.chunk),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    lines = [line for line in out.decode().splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"bulk child for {checkout} failed ({proc.returncode})")
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    result["ok"] = result["stored"] == args.jobs + 1  # + the warm-up job
    return result


async def compared(
    system: System, python: str, server: BenchServer, args: argparse.Namespace
) -> dict[str, Any]:
    async with fresh_database(server.url, f"bulk_{system.key}", migrate_schema=False) as db:
        return await run_simple(
            python, system, "bulk_enqueue", db, {"jobs": args.jobs}, server.server_pid
        )


def medians(rounds: list[dict[str, Any]], kind: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for label in dict.fromkeys(r["tree"] for r in rounds if r["kind"] == kind):
        mine = [r for r in rounds if r["kind"] == kind and r["tree"] == label and r.get("ok")]
        numbers = (int, float)  # not bool (ok)
        keys = [k for k, v in mine[0].items() if v.__class__ in numbers] if mine else []
        out[label] = {
            k: round(statistics.median(r[k] for r in mine), 3)
            for k in keys
            if k not in ("round", "jobs", "stored", "backends")
        }
        out[label]["runs"] = len(mine)
    return out


def paired(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Ratios within each round (same minutes, same neighbours), and their medians: on a
    loaded machine the load drifts between rounds far more than within one, so these are
    steadier than ratios of the per-tree medians."""
    out: dict[str, list[float]] = {}
    for r in sorted({x["round"] for x in rounds}):
        got = {(x["kind"], x["tree"]): x for x in rounds if x["round"] == r and x.get("ok")}

        for name, key in (
            ("compare_jobs_per_s", "jobs_per_s"),
            ("detail_jobs_per_s", "jobs_per_s"),
            ("detail_client_cpu", "client_cpu_us_per_job"),
        ):
            kind = name.split("_", 1)[0]
            a, b = got.get((kind, "this")), got.get((kind, "before"))
            if a is not None and b is not None and b[key]:
                ratio = round(a[key] / b[key], 3)
                out.setdefault(f"{name}_this_over_before", []).append(ratio)
        peers = [got[("compare", k)] for k in ("pgqueuer", "awa069") if ("compare", k) in got]
        if peers:
            best = max(peers, key=lambda x: x["jobs_per_s"])
            for tree in ("this", "before"):
                if ("compare", tree) in got:
                    ratio = got[("compare", tree)]["jobs_per_s"] / best["jobs_per_s"]
                    out.setdefault(f"compare_{tree}_over_best_peer", []).append(round(ratio, 3))
    return {k: {"per_round": v, "median": round(statistics.median(v), 3)} for k, v in out.items()}


async def run(args: argparse.Namespace, server: BenchServer) -> dict[str, Any]:
    durability = await server.ensure_durability()
    info = await machine_info(server, durability)
    trees = {"this": REPO_ROOT}
    if args.ab:
        trees["before"] = Path(args.ab)
    systems: dict[str, tuple[System, str]] = {
        label: (tree_system(label, path), sys.executable) for label, path in trees.items()
    }
    for key in args.peer_list:
        systems[key] = (SYSTEMS[key], peer_python(key, args))
    rounds: list[dict[str, Any]] = []
    steps_result = None
    async with fresh_database(server.url, "bulk") as url:
        if args.steps:
            steps_result = await steps(url, args.chunk)
            print(
                f"per chunk of {args.chunk:,}: "
                + ", ".join(f"{k} {v * 1000:.1f}ms" for k, v in steps_result.items())
            )
        if args.profile:
            await one_round(url, args.jobs, args.chunk, True)
        for r in range(args.rounds):
            flip = r % 2 == 1
            for label in reversed(list(trees)) if flip else trees:
                res = await detail(trees[label], url, args)
                rounds.append({"round": r, "kind": "detail", "tree": label, **res})
                print(
                    f"round {r} detail {label}: {res['jobs_per_s']:,} jobs/s, client "
                    f"{res['client_cpu_us_per_job']:.2f} µs/job, backend "
                    f"{res['backend_cpu_us_per_job']:.2f} µs/job",
                    file=sys.stderr,
                    flush=True,
                )
            for key in reversed(list(systems)) if flip else systems:
                system, python = systems[key]
                res = await compared(system, python, server, args)
                rounds.append({"round": r, "kind": "compare", "tree": key, **res})
                print(
                    f"round {r} compare {key}: {res.get('jobs_per_s')} jobs/s",
                    file=sys.stderr,
                    flush=True,
                )
    return {
        "benchmark": "bulk_insert",
        "machine": info,
        "trees": {label: str(path) for label, path in trees.items()},
        "parameters": {"jobs": args.jobs, "chunk": args.chunk, "rounds": args.rounds},
        "steps_ms": None
        if steps_result is None
        else {k: v * 1000 for k, v in steps_result.items()},
        "rounds": rounds,
        "median": {"detail": medians(rounds, "detail"), "compare": medians(rounds, "compare")},
        "paired": paired(rounds),
    }


def render(payload: dict[str, Any]) -> str:
    lines = [describe_machine(payload["machine"]), f"trees: {payload['trees']}"]
    for kind, per_tree in payload["median"].items():
        for label, m in per_tree.items():
            figures = ", ".join(f"{k} {v:,}" for k, v in m.items())
            lines.append(f"median {kind} {label}: {figures}")
    for name, ratios in payload["paired"].items():
        lines.append(f"paired {name}: median {ratios['median']} of {ratios['per_round']}")
    compare = payload["median"]["compare"]
    peers = [compare[k]["jobs_per_s"] for k in ("pgqueuer", "awa069") if k in compare]
    for label in payload["trees"]:
        if label in compare and peers:
            ratio = compare[label]["jobs_per_s"] / max(peers)
            lines.append(f"{label} ÷ best peer (compare medians): {ratio:.2f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.path.join(".awa", "bench"))
    p.add_argument("--fast", action="store_true", help="fsync/synchronous_commit off")
    p.add_argument("--jobs", type=int, default=100_000)
    p.add_argument("--chunk", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--ab", help="another checkout to measure against this one, alternately")
    p.add_argument("--peers", default="", help="compare.py peers to run too: pgqueuer,awa069")
    p.add_argument("--awa-venv", type=Path, default=SYSTEMS["awa069"].venv)
    p.add_argument("--pgqueuer-venv", type=Path, default=SYSTEMS["pgqueuer"].venv)
    p.add_argument("--steps", action="store_true")
    p.add_argument("--profile", action="store_true")
    add_output_args(p)
    args = p.parse_args(argv)
    args.peer_list = parse_scenarios(p, args.peers, ("pgqueuer", "awa069"))
    args.scenario_list, args.quick = ["bulk"], False
    args.ab = os.path.abspath(args.ab) if args.ab else None
    run_and_report(args, run, render, "bulk-insert", ["bulk"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
