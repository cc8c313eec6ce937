"""Before/after of the asynchronous claim commit (ADR 040): pickup latency and the claim
round trip of two checkouts, interleaved.

    python benchmarks/claim_commit.py BASE_TREE [--rounds 4] [--seconds 20] [--save-latest]

``BASE_TREE`` is a plain copy of the base revision (``git archive REV | tar -x -C DIR``).
Each round runs, for the base and for this checkout (the order alternates round by round,
so drift in a shared machine's load is not always charged to the same side):

- ``compare.py --scenarios pickup --systems project``: the issue-16 figure, pickup latency
  at 200 single inserts/s (p50/p95/p99, ms);
- ``throughput.py --scenarios pickup_latency``: the same load with per-stage timestamps,
  of which the ``claim`` stage is the claim round trip (statement + commit + pool release
  + decode; p50/p99, ms).

Both against one embedded PostgreSQL data directory with the durable settings users run
(``synchronous_commit = on``: what an asynchronous claim commit saves is the wait for the
WAL flush). Prints every run and the medians per side with their ratio (here / base);
writes ``results/claim-commit-<stamp>.json`` (``--save-latest``: also ``-latest``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]
RESULTS = HERE / "benchmarks" / "results"

#: (label, benchmark, path into its results)
FIGURES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("pickup p50 ms", "compare", ("pickup", "project", "p50_ms")),
    ("pickup p95 ms", "compare", ("pickup", "project", "p95_ms")),
    ("pickup p99 ms", "compare", ("pickup", "project", "p99_ms")),
    ("claim p50 ms", "throughput", ("pickup_latency", "stages", "claim", "p50_ms")),
    ("claim p99 ms", "throughput", ("pickup_latency", "stages", "claim", "p99_ms")),
    ("traced pickup p99 ms", "throughput", ("pickup_latency", "p99_ms")),
)


def run(checkout: Path, bench: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One benchmark run of ``checkout`` (its own ``src/``); its results section."""
    out.mkdir(parents=True, exist_ok=True)
    if bench == "compare":
        extra = ["--scenarios", "pickup", "--systems", "project"]
        extra += ["--pickup-seconds", str(args.seconds)]
    else:
        extra = ["--scenarios", "pickup_latency", "--duration", str(args.seconds)]
    command = [
        sys.executable,
        str(checkout / "benchmarks" / f"{bench}.py"),
        *extra,
        "--data-dir",
        str(args.data_dir),
        "--save",
        "--output-dir",
        str(out),
    ]
    env = {**os.environ, "PYTHONPATH": str(checkout / "src")}
    subprocess.run(command, cwd=checkout, env=env, check=True, capture_output=True, text=True)
    newest = max(out.glob(f"{bench}-*.json"), key=lambda p: p.stat().st_mtime)
    results: dict[str, Any] = json.loads(newest.read_text())["results"]
    return results


def pick(results: dict[str, Any], path: tuple[str, ...]) -> float:
    value: Any = results
    for key in path:
        value = value[key]
    return float(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_tree", type=Path, help="a plain copy of the base revision")
    parser.add_argument("--rounds", type=int, default=4, help="runs per side")
    parser.add_argument("--seconds", type=float, default=20.0, help="inserting, per run")
    parser.add_argument("--data-dir", type=Path, default=HERE / ".awa" / "bench-pgdata-claims")
    parser.add_argument("--save-latest", action="store_true")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    trees = {"base": args.base_tree.resolve(), "here": HERE}
    runs: dict[str, list[dict[str, float]]] = {"base": [], "here": []}
    load: list[list[float]] = []
    with tempfile.TemporaryDirectory(prefix="awa-claim-commit-") as scratch:
        for round_no in range(args.rounds):
            sides = ("base", "here") if round_no % 2 == 0 else ("here", "base")
            for side in sides:
                load.append(list(os.getloadavg()))
                measured: dict[str, float] = {}
                for bench in ("compare", "throughput"):
                    out = Path(scratch) / f"{side}-{round_no}-{bench}"
                    results = run(trees[side], bench, args, out)
                    for label, source, path in FIGURES:
                        if source == bench:
                            measured[label] = pick(results, path)
                runs[side].append(measured)
                shown = "  ".join(f"{k}={v:.2f}" for k, v in measured.items())
                print(f"round {round_no + 1} {side:>4}: {shown}", flush=True)

    report: dict[str, Any] = {
        "benchmark": "claim_commit",
        "base_tree": str(args.base_tree),
        "rounds": args.rounds,
        "seconds_per_run": args.seconds,
        "rate_per_s": 200,
        "cpus": os.cpu_count(),
        "load_average_at_each_run": load,
        "figures": {},
    }
    print(f"\nhere / base (median of {args.rounds} runs each side; lower is better)")
    for label, _, _ in FIGURES:
        base = [r[label] for r in runs["base"]]
        here = [r[label] for r in runs["here"]]
        ratio = statistics.median(here) / statistics.median(base)
        print(
            f"  {label:<22} base {statistics.median(base):8.2f} "
            f"[{min(base):.2f}-{max(base):.2f}]  here {statistics.median(here):8.2f} "
            f"[{min(here):.2f}-{max(here):.2f}]  ratio {ratio:5.3f}"
        )
        report["figures"][label] = {
            "base": base,
            "here": here,
            "base_median": statistics.median(base),
            "here_median": statistics.median(here),
            "ratio": ratio,
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2) + "\n"
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"claim-commit-{stamp}.json").write_text(text)
    if args.save_latest:
        (RESULTS / "claim-commit-latest.json").write_text(text)
    print(f"\nwrote results/claim-commit-{stamp}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
