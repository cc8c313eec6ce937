"""``benchmarks/fleet.py --quick`` against this session's server: a fleet of 2 processes x 2
default runtimes really runs, the JSON carries every figure, and the leader's process is
killed and a runtime of another process takes over. No timing is asserted (a smoke test on a
shared machine); the figures are checked for presence and consistency only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "fleet.py"


def pid_of(instance_id: str) -> int:
    """The pid in a default instance id (``host:pid:suffix``)."""
    return int(instance_id.split(":")[-2])


def test_the_fleet_benchmark_measures_an_idle_fleet_and_a_failover(
    server_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "AWA_DATABASE_URL": server_url}
    result = subprocess.run(
        [sys.executable, str(BENCHMARK), "--quick", "--save", "--output-dir", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "failovers:" in result.stdout, output[-4000:]
    payload = json.loads((tmp_path / "fleet-quick-latest.json").read_text())
    assert payload["params"]["max_connections"] > 0
    results = payload["results"]
    assert results["ok"] is True
    for name, runtimes, processes in (("single", 1, 1), ("fleet", 4, 2)):
        s = results[name]
        assert (s["runtimes"], s["processes"]) == (runtimes, processes)
        assert sum(s["runtimes_per_process"]) == runtimes
        for key in (
            "raw_tx_per_s",
            "net_tx_per_s",
            "net_tx_per_s_per_runtime",
            "tx_per_s",
            "tx_per_s_per_runtime",
        ):
            assert isinstance(s[key], float), (name, key, s[key])
        # An external server (this session's): no server log to read, so the judged figure
        # is pg_stat_statements' statement count, which saw the fleet's statements.
        assert s["tx_basis"].startswith("pg_stat_statements"), s["tx_basis"]
        assert s["window"]["statements_per_s"] > 0
        assert s["background"]["seconds"] > 0 and s["window"]["seconds"] > 0
        # Every runtime holds at least its presence, LISTEN and election connections.
        assert s["connections_per_runtime"] >= 3, s["window"]["connections"]
        assert s["leader_changes_in_window"] >= 0
        assert s["window"]["leader"]["holder_after"] is not None  # someone leads
        assert s["window"]["statements"], "pg_stat_statements saw no statement"
    assert results["single"]["failovers"] == []
    assert results["follower_connections"] is not None
    (failover,) = results["fleet"]["failovers"]
    assert failover["ok"] is True
    assert failover["term_after"] > failover["term_before"]
    assert pid_of(failover["new_holder"]) != failover["killed_pid"]
    assert results["fleet"]["failover_max_s"] == failover["failover_s"]
