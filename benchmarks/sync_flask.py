"""Latency of a Flask view that inserts a job through ``awa.SyncClient``, over real HTTP,
against the same insert called directly (a script, not a test; issue 18, ADR 023).

The view is the example's own (``examples/flask/signup.py``, ``POST /signup``), served by a
threaded werkzeug server (one thread per request, as ``app.run(threaded=True)``), on the
same durable server and database. Two scenarios, each ``--requests`` calls from 8 threads
at once, timed per call in the thread that makes it:

- ``flask_view``: an HTTP request to the view (a new connection, werkzeug's parsing and
  thread, Flask's routing and JSON, the insert, the response);
- ``direct``: ``SyncClient.insert`` of the same job on the same client (the view's floor).

The difference is what the web stack adds to an insert. Scenarios alternate for
``--rounds`` rounds after a warm-up, so a drift of the machine shows in both. Run
``python benchmarks/sync_flask.py``; ``--quick`` is a seconds-long smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

import _support  # noqa: F401 - before awa: puts this checkout's src/ first on sys.path
from _support import REPO_ROOT
from _support.cli import add_output_args, add_server_args, parse_scenarios
from _support.machine import describe_machine, machine_info
from _support.results import run_and_report
from _support.server import BenchServer, fresh_database
from _support.stats import percentiles

SCENARIOS = ("flask_view", "direct")
THREADS = 8
EXAMPLE = REPO_ROOT / "examples" / "flask"


def load_example(url: str) -> ModuleType:
    """The example's module, as ``python signup.py`` would run it, pointed at ``url``."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    sys.path.insert(0, str(EXAMPLE))
    import signup

    signup.client.set_database_url(url)
    signup.prepare_database()
    return signup


@contextmanager
def serving(app: Any) -> Iterator[BaseWSGIServer]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="wsgi")
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(timeout=30)
        server.server_close()


def http_insert(port: int) -> Callable[[int], None]:
    def call(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            body = json.dumps({"email": f"user{i}@example.com"})
            conn.request("POST", "/signup", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status != 201:
                raise RuntimeError(f"POST /signup answered {response.status}")
        finally:
            conn.close()

    return call


def direct_insert(signup: ModuleType) -> Callable[[int], None]:
    def call(i: int) -> None:
        signup.sync.insert("send_email", {"to": f"user{i}@example.com"}, priority=1)

    return call


def threaded_round(call: Callable[[int], None], n: int) -> tuple[list[float], float]:
    """``n`` calls split over ``THREADS`` threads started together: per-call durations and
    the wall time of all of them. A failed call fails the run (the count of errors is 0
    by construction of a finished run)."""
    gate = threading.Barrier(THREADS + 1)

    def work(share: int) -> list[float]:
        gate.wait()
        out = []
        for i in range(share):
            t0 = time.perf_counter()
            call(i)
            out.append(time.perf_counter() - t0)
        return out

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(work, n // THREADS) for _ in range(THREADS)]
        gate.wait()
        start = time.perf_counter()
        durations = [d for f in futures for d in f.result()]
        return durations, time.perf_counter() - start


def summary(values: list[float], wall: float) -> dict[str, Any]:
    pct = percentiles(values, (50, 95, 99))
    out: dict[str, Any] = {"n": len(values)}
    for key in ("p50", "p95", "p99"):
        out[f"{key}_ms"] = round(pct[key] * 1000, 3) if pct else None
    out["max_ms"] = round(max(values) * 1000, 3) if values else None
    out["requests_per_s"] = round(len(values) / wall, 1) if wall else None
    return out


def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    signup = load_example(url)
    samples: dict[str, list[float]] = {s: [] for s in args.scenario_list}
    walls = dict.fromkeys(args.scenario_list, 0.0)
    try:
        with serving(signup.app) as server:
            calls = {"flask_view": http_insert(server.server_port), "direct": direct_insert(signup)}
            for scenario in args.scenario_list:
                threaded_round(calls[scenario], args.warmup)
            for _ in range(args.rounds):
                for scenario in args.scenario_list:
                    durations, wall = threaded_round(calls[scenario], args.requests)
                    samples[scenario] += durations
                    walls[scenario] += wall
    finally:
        signup.sync.close()
    results: dict[str, Any] = {s: summary(samples[s], walls[s]) for s in args.scenario_list}
    results["errors"] = 0  # any failed request raised above
    if "flask_view" in results and "direct" in results:
        results["flask_view_p50_minus_direct_p50_ms"] = round(
            results["flask_view"]["p50_ms"] - results["direct"]["p50_ms"], 3
        )
    return results


async def run(args: argparse.Namespace, server: BenchServer) -> dict[str, Any]:
    info = await machine_info(server, await server.ensure_durability())
    async with fresh_database(server.url, "sync_flask") as url:
        results = await asyncio.to_thread(measure, url, args)
    return {
        "benchmark": "sync_flask",
        "mode": "quick" if args.quick else "full",
        "machine": info,
        "params": {
            "rounds": args.rounds,
            "requests_per_round": args.requests,
            "warmup": args.warmup,
            "threads": THREADS,
            "server": "werkzeug make_server(threaded=True)",
            "scenarios": args.scenario_list,
        },
        "results": results,
    }


def render(payload: dict[str, Any]) -> str:
    r = payload["results"]
    lines = [
        describe_machine(payload["machine"]),
        f"one insert per call, {THREADS} threads at once",
        f"{'scenario':<12} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        f" {'calls/s':>9}",
    ]
    for scenario in SCENARIOS:
        if scenario in r:
            s = r[scenario]
            cells = " ".join(f"{s[k]:>8.2f}" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))
            lines.append(f"{scenario:<12} {s['n']:>6} {cells} {s['requests_per_s']:>9,.0f}")
    lines.append(f"errors: {r['errors']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    add_server_args(p, data_dir="bench-pgdata")
    add_output_args(p)
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds of each scenario")
    p.add_argument("--requests", type=int, default=800, help="calls per scenario per round")
    p.add_argument("--warmup", type=int, default=160, help="unmeasured calls first")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"from {SCENARIOS}")
    p.add_argument("--quick", action="store_true", help="2 rounds of 48: a smoke run")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.requests, args.warmup = 2, 48, 16
    args.scenario_list = parse_scenarios(p, args.scenarios, SCENARIOS)
    run_and_report(args, run, render, "sync-flask", SCENARIOS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
