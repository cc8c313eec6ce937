"""``benchmarks/job_counts.py`` end to end with tiny numbers: both modes (count triggers
off and on; the live ones of migration 18 or the history's of migration 19) run every
write path and a drain, and the JSON says so (no timing is asserted;
the figures come from the full run, see benchmarks/README.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[3] / "benchmarks" / "job_counts.py"


@pytest.mark.parametrize(
    ("triggers", "stem"), [("live", "job_counts"), ("history", "history_counts")]
)
def test_the_benchmark_runs_with_tiny_numbers(
    tmp_path: Path, server_url: str, triggers: str, stem: str
) -> None:
    env = {**os.environ, "AWA_DATABASE_URL": server_url}
    result = subprocess.run(
        [sys.executable, str(BENCHMARK), "--rounds", "1", "--singles", "3", "--copies", "1",
         "--drain-jobs", "200", "--concurrency", "10", "--claim-batch", "20",
         "--triggers", triggers, "--output-dir", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    payload = json.loads((tmp_path / f"{stem}-latest.json").read_text())
    assert payload["triggers"] == triggers
    (run,) = payload["runs"]
    assert set(run) == {"off", "on"}
    for mode in ("off", "on"):
        assert run[mode]["drain_ok"], run[mode]
        assert run[mode]["claim_100_server_ms"] > 0 and run[mode]["copy_per_job_wal_bytes"] > 0
    assert set(payload["ratio_on_off"]) >= {
        "insert_wall_ms",
        "insert_server_ms",
        "drain_jobs_per_s",
    }
