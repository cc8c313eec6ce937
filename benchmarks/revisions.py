"""Before/after: drain throughput and pickup latency of two checkouts, measured back to back.

    python benchmarks/revisions.py BASE_REV [--rounds 3] [--drain-jobs 20000] [--duration 10]

Checks ``BASE_REV`` out into a scratch worktree and runs ``benchmarks/throughput.py``
(scenarios ``drain`` and ``pickup_latency``) of the base and of this checkout in turn,
``base, here, base, here, …``, each against a fresh embedded PostgreSQL of its own, so that
drift in the machine's load hits both sides alike. Prints each run and the ratio of the
medians (here / base): drain jobs/s, CPU µs per job, pickup p50 and p99. A refactoring is
"within noise" when the ratios sit inside the spread of the runs of one side. Writes
``results/revisions-<stamp>.json`` (git-ignored; ``--save-latest`` also writes
``revisions-latest.json``).
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

#: (label, scenario, key in that scenario's result, higher is better)
FIGURES: tuple[tuple[str, str, str, bool], ...] = (
    ("drain jobs/s", "drain", "jobs_per_s", True),
    ("drain CPU µs/job", "drain", "client_cpu_us_per_job", False),
    ("pickup p50 ms", "pickup_latency", "p50_ms", False),
    ("pickup p99 ms", "pickup_latency", "p99_ms", False),
)


def run_throughput(checkout: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One ``throughput.py`` run of ``checkout``, with its own ``src/`` and data directory."""
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        str(checkout / "benchmarks" / "throughput.py"),
        "--scenarios",
        "drain,pickup_latency",
        "--drain-jobs",
        str(args.drain_jobs),
        "--duration",
        str(args.duration),
        "--data-dir",
        str(out / "pgdata"),
        "--save",
        "--output-dir",
        str(out),
    ]
    env = {**os.environ, "PYTHONPATH": str(checkout / "src")}
    subprocess.run(command, cwd=checkout, env=env, check=True, capture_output=True, text=True)
    newest = max(out.glob("throughput-*.json"), key=lambda p: p.stat().st_mtime)
    results: dict[str, Any] = json.loads(newest.read_text())["results"]
    return results


def figures(results: dict[str, Any]) -> dict[str, float]:
    return {label: float(results[scenario][key]) for label, scenario, key, _ in FIGURES}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="git revision to compare this checkout with")
    parser.add_argument("--rounds", type=int, default=3, help="runs per side (default 3)")
    parser.add_argument("--drain-jobs", type=int, default=20000)
    parser.add_argument("--duration", type=float, default=10.0, help="pickup run, seconds")
    parser.add_argument("--save-latest", action="store_true")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    with tempfile.TemporaryDirectory(prefix="awa-revisions-") as scratch:
        base_tree = Path(scratch) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(base_tree), args.base],
            cwd=HERE,
            check=True,
            capture_output=True,
        )
        try:
            runs: dict[str, list[dict[str, float]]] = {"base": [], "here": []}
            for round_no in range(args.rounds):
                for side, tree in (("base", base_tree), ("here", HERE)):
                    out = Path(scratch) / f"{side}-{round_no}"
                    measured = figures(run_throughput(tree, args, out))
                    runs[side].append(measured)
                    shown = "  ".join(f"{k}={v:.2f}" for k, v in measured.items())
                    print(f"round {round_no + 1} {side:>4}: {shown}", flush=True)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(base_tree)],
                cwd=HERE,
                check=False,
                capture_output=True,
            )

    report: dict[str, Any] = {"base": args.base, "rounds": args.rounds, "figures": {}}
    print(f"\nhere / {args.base} (median of {args.rounds} runs each side)")
    for label, _, _, higher_better in FIGURES:
        base = [r[label] for r in runs["base"]]
        here = [r[label] for r in runs["here"]]
        ratio = statistics.median(here) / statistics.median(base)
        spread = (max(base) - min(base)) / statistics.median(base)
        print(
            f"  {label:<18} base {statistics.median(base):9.2f}  here "
            f"{statistics.median(here):9.2f}  ratio {ratio:5.3f}  (base runs spread "
            f"{spread:.1%}; {'higher' if higher_better else 'lower'} is better)"
        )
        report["figures"][label] = {"base": base, "here": here, "ratio": ratio}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"revisions-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    if args.save_latest:
        (RESULTS / "revisions-latest.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
