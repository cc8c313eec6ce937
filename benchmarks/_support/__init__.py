"""Tooling shared by the benchmark scenario scripts (``benchmarks/*.py``).

- ``server``: the server to run against, a throwaway migrated database per scenario;
- ``pg_stats``: ``pg_stat_statements`` and WAL I/O;
- ``cpu``: CPU accounting per process and machine, waiting for a quiet machine;
- ``machine``: facts recorded with every result;
- ``stats``: percentiles and millisecond summaries;
- ``statement_log``: attributing a server statement log to the code that issued it;
- ``plots``: matplotlib figures of a long-horizon run;
- ``results`` and ``cli``: the flags every script shares, running, writing results;
- ``compare/``: the side-by-side comparison: its scenario module and driver contract
  (``scenarios``), one adapter per system (``project``, ``pgqueuer_adapter``, ``awa069``; run
  as subprocesses, each in its own interpreter), the systems and their venvs (``systems``),
  the subprocess runner (``runner``) and the ratio table (``table``).

Importing the package puts this checkout's ``src/`` first on ``sys.path``: the installed
``awa`` may be an editable install of another clone, and results must say what they measured.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
if str(REPO_ROOT / "src") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "src"))

import awa  # noqa: E402

#: Which copy of awa is being measured (should be this checkout's src/awa).
AWA_SOURCE = str(Path(awa.__file__).resolve().parent)

#: Where results (JSON, plots) are written.
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"

__all__ = ["AWA_SOURCE", "REPO_ROOT", "RESULTS_DIR"]
