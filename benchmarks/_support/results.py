"""Running a benchmark end to end and writing its results.

Only ``<bench>-latest.json`` (and its plots) is committed; dated runs
(``<bench>-<UTC stamp>.json``) are kept locally and ignored by git (``.gitignore``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _support import RESULTS_DIR
from _support.server import BenchServer


def run_and_report(
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace, BenchServer], Awaitable[dict[str, Any]]],
    render: Callable[[dict[str, Any]], str],
    stem: str,
    scenarios: Sequence[str],
) -> dict[str, Any]:
    """What every benchmark's ``main`` does: start the embedded server (``--data-dir``,
    ``--fast``), ``run``, stop it, print ``render``'s text and write the JSON (unless
    ``--no-save``; ``--quick`` writes ``<stem>-quick`` only with ``--save``). Only a run of
    every scenario replaces ``<stem>-latest.json``, and not one that sets ``args.partial``
    (e.g. ``compare.py --systems`` without every system). Returns the payload."""
    server = BenchServer(args.data_dir, durable=not args.fast)
    server.start()
    try:
        payload = asyncio.run(run(args, server))
    finally:
        server.stop()
    print(render(payload))
    if args.save or not (args.no_save or args.quick):
        complete = set(args.scenario_list) == set(scenarios)
        complete = complete and not getattr(args, "partial", False)
        name = f"{stem}-quick" if args.quick else stem
        paths = write_results(payload, name, directory=args.output_dir, latest=complete)
        print(f"\nwrote {', '.join(str(p) for p in paths)}")
    return payload


def write_results(
    payload: dict[str, Any], stem: str, *, directory: Path = RESULTS_DIR, latest: bool = True
) -> list[Path]:
    """Write ``<stem>-<timestamp>.json`` and, unless ``latest`` is False (a run of only some
    scenarios must not replace the full run that ``-latest`` stands for),
    ``<stem>-latest.json``; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(payload, indent=2, sort_keys=False) + "\n"
    paths = [directory / f"{stem}-{stamp}.json"]
    if latest:
        paths.append(directory / f"{stem}-latest.json")
    for path in paths:
        path.write_text(text, encoding="utf-8")
    return paths
