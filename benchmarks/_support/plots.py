"""Plots of a long-horizon run (matplotlib, optional: without it no plots are drawn).

Three figures per run: promotion lateness per lane mode, branch overruns, and resources
(RSS, dead tuples, CPU). Only the newest run's plots are committed, as
``results/plots/long-horizon-latest-*.png``.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _support import RESULTS_DIR

log = logging.getLogger("awa.bench.long_horizon")

#: Where plots go; only ``*-latest-*.png`` is committed.
PLOTS_DIR = RESULTS_DIR / "plots"


def publish_latest(paths: Sequence[Path], stem: str, latest_stem: str) -> list[Path]:
    """Copy each ``<stem>-<figure>.png`` to ``<latest_stem>-<figure>.png`` beside it: the
    committed copy of the newest complete run (dated plots are git-ignored)."""
    copies = []
    for path in paths:
        target = path.with_name(path.name.replace(stem, latest_stem, 1))
        shutil.copyfile(path, target)
        copies.append(target)
    return copies


def render_plots(
    summaries: dict[str, dict[str, Any]],
    samples: dict[str, list[dict[str, Any]]],
    stem: str,
    directory: Path = PLOTS_DIR,
) -> list[Path]:
    """Lateness and overruns over time (split vs single when both ran), plus resources."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed (pip install -e '.[bench]'): no plots")
        return []
    directory.mkdir(parents=True, exist_ok=True)
    colors = {"split": "tab:blue", "single": "tab:red"}
    styles = {"split": "-", "single": "--"}
    paths: list[Path] = []

    def mark_pressure(ax: Any) -> None:
        for mode, summ in summaries.items():
            at = summ.get("pressure_started_s")
            if at is not None:
                ax.axvline(at / 60, color=colors[mode], ls=":", lw=1)

    def save(fig: Any, axes: Any, name: str) -> None:
        """Mark the pressure start and a grid on every panel, write ``<stem>-<name>.png``."""
        for ax in axes:
            mark_pressure(ax)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        path = directory / f"{stem}-{name}.png"
        fig.savefig(path, dpi=72)
        plt.close(fig)
        paths.append(path)

    # 1. Lateness: scheduled jobs (per-second p99 and max) and promote_scheduled's lateness.
    fig, axes = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    for mode, ss in samples.items():
        run = [s for s in ss if s["phase"] != "drain"]
        t = [s["t"] / 60 for s in run if s["promotion"]["max_ms"] is not None]
        mx = [s["promotion"]["max_ms"] for s in run if s["promotion"]["max_ms"] is not None]
        t, mx = _bucket_max(t, mx)
        axes[0].plot(t, mx, color=colors[mode], lw=0.8, label=f"{mode}: max per 10 s")
        bt, bl = [], []
        for s in run:
            b = s["branches"].get("promote_scheduled")
            if b and b[2] is not None:
                bt.append(s["t"] / 60)
                bl.append(b[2] * 1000)
        axes[1].plot(bt, bl, color=colors[mode], lw=0.7, label=mode)
    axes[0].set_ylabel("ms (attempted_at - run_at)")
    axes[0].set_title("Promotion lateness of scheduled jobs")
    axes[0].set_yscale("symlog", linthresh=10)
    axes[0].legend(loc="upper left", fontsize=8)
    axes[1].set_ylabel("ms")
    axes[1].set_title("promote_scheduled branch lateness (last run, sampled 1/s)")
    axes[1].set_yscale("symlog", linthresh=10)
    axes[1].set_xlabel("minutes (dotted: hygiene pressure starts)")
    axes[1].legend(loc="upper left", fontsize=8)
    save(fig, axes, "lateness")

    # 2. Overruns: cumulative episodes per branch, and how many branches are delayed.
    fig, axes = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    for mode, ss in samples.items():
        run = [s for s in ss if s["phase"] != "drain"]
        names = sorted({n for s in run for n in s["branches"]})
        for name in names:
            pts = [(s["t"] / 60, s["branches"][name][3]) for s in run if name in s["branches"]]
            if pts and pts[-1][1] > 0:
                axes[0].step(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    where="post",
                    color=colors[mode],
                    ls=styles[mode],
                    lw=1.0,
                    label=f"{mode}: {name}",
                )
        axes[1].plot(
            [s["t"] / 60 for s in run],
            [sum(b[4] for b in s["branches"].values()) for s in run],
            color=colors[mode],
            lw=0.8,
            label=mode,
        )
    axes[0].set_ylabel("episodes (cumulative)")
    axes[0].set_title("Overrun episodes per branch")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(loc="upper left", fontsize=7)
    axes[1].set_ylabel("branches")
    axes[1].set_title("Branches in DELAYED state")
    axes[1].set_xlabel("minutes (dotted: hygiene pressure starts)")
    axes[1].legend(loc="upper left", fontsize=8)
    save(fig, axes, "overruns")

    # 3. Resources: completed jobs/s, dead tuples, RSS.
    fig, axes = plt.subplots(3, 1, figsize=(8, 6.5), sharex=True)
    for mode, ss in samples.items():
        run = [s for s in ss if s["phase"] != "drain"]
        t = [s["t"] / 60 for s in run]
        bt, bv = _bucket_mean(t, [s["completed_per_s"] for s in run])
        axes[0].plot(bt, bv, color=colors[mode], lw=0.8, label=f"{mode} (10 s mean)")
        axes[1].plot(t, [s["dead_tuples"] for s in run], color=colors[mode], lw=0.8, label=mode)
        axes[2].plot(t, [s["rss_mb"] for s in run], color=colors[mode], lw=0.8, label=mode)
    axes[0].set_ylabel("jobs/s")
    axes[0].set_title("Completed jobs per second")
    axes[1].set_ylabel("rows")
    axes[1].set_title("Dead tuples, awa schema (pg_stat_user_tables)")
    axes[2].set_ylabel("MB")
    axes[2].set_title("Benchmark process RSS")
    axes[2].set_xlabel("minutes")
    for ax in axes:
        ax.legend(loc="upper left", fontsize=8)
    save(fig, axes, "resources")
    return paths


def _bucket_max(
    t: Sequence[float], v: Sequence[float], width_min: float = 10 / 60
) -> tuple[list[float], list[float]]:
    """Max of ``v`` per ``width_min`` minutes (keeps spikes, keeps long-run plots legible)."""
    buckets: dict[int, float] = {}
    for x, y in zip(t, v, strict=True):
        k = int(x / width_min)
        buckets[k] = max(buckets.get(k, y), y)
    keys = sorted(buckets)
    return [(k + 0.5) * width_min for k in keys], [buckets[k] for k in keys]


def _bucket_mean(
    t: Sequence[float], v: Sequence[float], width_min: float = 10 / 60
) -> tuple[list[float], list[float]]:
    sums: dict[int, list[float]] = {}
    for x, y in zip(t, v, strict=True):
        acc = sums.setdefault(int(x / width_min), [0.0, 0.0])
        acc[0] += y
        acc[1] += 1
    keys = sorted(sums)
    return [(k + 0.5) * width_min for k in keys], [sums[k][0] / sums[k][1] for k in keys]
