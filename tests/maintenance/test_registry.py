"""The registry of built-in branches (``awa.maintenance.builtin``) and the layout it stands on.

Database-free. Each built-in branch lives in ``awa/maintenance/branches/<name>.py`` and has
its tests in ``tests/maintenance/branches/test_<name>.py`` (or, for the branches of a
feature, in that feature's folder); every branch builds itself from ``BranchOptions``; only
the branches that declare a wake-up topic listen to it (routing: ``test_supervisor.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

import awa
from awa.config import MaintenanceConfig
from awa.cron import CronTable
from awa.maintenance import (
    BUILTIN_BRANCHES,
    CRON_CHANGED,
    DUE,
    BranchContext,
    BranchOptions,
    build_branches,
    default_branches,
)
from awa.maintenance.branches.cleanup import Cleanup
from awa.maintenance.branches.cron_sync import CronSync
from awa.maintenance.branches.dead_letter import DeadLetterHold
from awa.maintenance.branches.deliver_events import DeliverEvents

BRANCHES_DIR = Path(awa.__file__).parent / "maintenance" / "branches"
TESTS_DIR = Path(__file__).parent / "branches"
#: Built-in branches whose tests live with their feature rather than in ``branches/``.
TESTED_WITH_THEIR_FEATURE = {
    "cron_evaluate": "tests/cron",
    "cron_sync": "tests/cron",
    "dead_letter": "tests/dlq",
    "deliver_events": "tests/events",
}


def test_one_module_per_branch_named_after_it() -> None:
    stems = {p.stem for p in BRANCHES_DIR.glob("*.py") if p.stem != "__init__"}
    names = [cls.name for cls in BUILTIN_BRANCHES]
    assert len(set(names)) == len(names)
    assert stems == set(names)
    for cls in BUILTIN_BRANCHES:
        assert cls.__module__ == f"awa.maintenance.branches.{cls.name}"


def test_every_branch_has_a_test_file() -> None:
    for cls in BUILTIN_BRANCHES:
        if cls.name in TESTED_WITH_THEIR_FEATURE:
            continue
        assert (TESTS_DIR / f"test_{cls.name}.py").is_file(), cls.name


def test_a_process_without_the_cron_table_runs_no_cron_sync() -> None:
    names = [b.name for b in build_branches(BranchOptions())]
    assert names == [cls.name for cls in BUILTIN_BRANCHES if cls is not CronSync]


def test_every_builtin_is_built_in_registry_order_when_declarations_are_known() -> None:
    built = build_branches(BranchOptions(cron=CronTable(), instance_id="me"))
    assert [type(b) for b in built] == list(BUILTIN_BRANCHES)
    sync = next(b for b in built if isinstance(b, CronSync))
    assert sync.synced_by == "me"


def test_options_reach_the_branches_that_need_them() -> None:
    async def hook(ctx: BranchContext) -> None:
        return None

    built = {
        b.name: b
        for b in default_branches(
            MaintenanceConfig(intervals={"cleanup": 7.0, "promote_scheduled": 0.5}),
            [hook],
            dead_letters=[],
        )
    }
    cleanup = cast(Cleanup, built["cleanup"])
    assert (cleanup.interval, cleanup.hooks) == (7.0, [hook])
    assert built["promote_scheduled"].interval == 0.5
    dead_letter = cast(DeadLetterHold, built["dead_letter"])
    assert dead_letter.synced_by == "unknown"
    assert cast(DeliverEvents, built["deliver_events"]).sinks == []


def test_intervals_for_unknown_branches_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown branches"):
        build_branches(BranchOptions(config=MaintenanceConfig(intervals={"nope": 1.0})))


def test_only_the_branches_that_declare_a_topic_listen_to_it() -> None:
    listeners = {
        topic: {cls.name for cls in BUILTIN_BRANCHES if topic in cls.wakes_on}
        for topic in (DUE, CRON_CHANGED)
    }
    assert listeners == {DUE: {"promote_scheduled"}, CRON_CHANGED: {"cron_evaluate"}}
