"""Cron declarations are validated when declared, not when the leader evaluates them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from awa.cron import CronTable
from awa.cron.schedule import CronSchedule, Misfire, Overlap, parse_misfire, parse_overlap
from awa.errors import ValidationError


def test_misfire_and_overlap_accept_aliases_and_case() -> None:
    assert parse_misfire("Catch_Up") is Misfire.CATCHUP_ALL
    assert parse_misfire("coalesce") is Misfire.CATCHUP_LATEST
    assert parse_overlap(" BUFFER_ONE ") is Overlap.BUFFER_ONE
    with pytest.raises(ValidationError, match="catchup_latest"):
        parse_misfire("sometimes")
    with pytest.raises(ValidationError, match="buffer_one"):
        parse_overlap("queue")


def test_a_schedule_normalises_its_options() -> None:
    schedule = CronSchedule(
        "nightly",
        "0 3 * * *",
        "report",
        misfire="compress",
        catchup_window=timedelta(minutes=30),
        miss_tolerance=0,
    )
    assert schedule.misfire is Misfire.CATCHUP_LATEST
    assert schedule.window_s == 1800.0 and schedule.tolerance_s == 0.0
    declared = schedule.declaration()
    assert declared["misfire"] == "catchup_latest" and declared["catchup_window_s"] == 1800.0
    assert declared["metadata"] == {} and declared["tags"] == []


def test_the_fingerprint_follows_the_declaration() -> None:
    a = CronSchedule("s", "*/5 * * * *", "k")
    assert a.fingerprint() == CronSchedule("s", "*/5 * * * *", "k").fingerprint()
    assert a.fingerprint() != CronSchedule("s", "*/5 * * * *", "k", paused=True).fingerprint()
    assert len(a.fingerprint()) == 16


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "a\x00"}, "name"),
        ({"kind": ""}, "kind"),
        ({"priority": 7}, "priority"),
        ({"args": {"x": float("nan")}}, "args"),
        ({"max_catchup": 0}, "max_catchup"),
        ({"paused": "yes"}, "paused"),
        ({"catchup_window": -1}, "catchup_window"),
        ({"overlap": "never"}, "overlap"),
    ],
)
def test_a_bad_declaration_fails_at_once(kwargs: dict[str, object], field: str) -> None:
    options: dict[str, object] = {"name": "s", "expression": "* * * * *", "kind": "k"} | kwargs
    with pytest.raises(ValidationError) as info:
        CronSchedule(**options)  # type: ignore[arg-type]
    assert info.value.field == field


def test_a_bad_expression_fails_at_once() -> None:
    with pytest.raises(ValidationError):
        CronSchedule("s", "61 * * * *", "k")


def test_the_table_refuses_a_second_schedule_with_the_same_name() -> None:
    table = CronTable()
    table.add("s", "* * * * *", "k")
    assert "s" in table and len(table) == 1
    with pytest.raises(ValidationError, match="already exists"):
        table.add("s", "0 * * * *", "k")
    assert [s.expression for s in table] == ["* * * * *"]


def test_a_schedule_without_a_queue_is_resolved_when_the_table_is_published() -> None:
    handlers: dict[str, str] = {}
    table = CronTable(queue_of=handlers.get)
    table.add("by_handler", "* * * * *", "mail_kind")
    table.add("named", "* * * * *", "mail_kind", queue="bulk")
    table.add("unhandled", "* * * * *", "other_kind")
    assert [s.queue for s in table] == [None, "bulk", None]  # as declared
    handlers["mail_kind"] = "mail"  # registered after the schedules: still taken
    resolved = {s.name: s.queue for s in table.resolved()}
    assert resolved == {"by_handler": "mail", "named": "bulk", "unhandled": "default"}
    assert [s.queue for s in table] == [None, "bulk", None]  # the declarations are kept
    by_handler = next(s for s in table.resolved() if s.name == "by_handler")
    assert by_handler.declaration()["queue"] == "mail"
    handlers["mail_kind"] = "mail_v2"  # the handler moved: the published fingerprint follows
    moved = next(s for s in table.resolved() if s.name == "by_handler")
    assert moved.fingerprint() != by_handler.fingerprint()


def test_a_bare_table_sends_unnamed_queues_to_default() -> None:
    table = CronTable()
    table.add("s", "* * * * *", "k")
    [schedule] = table.resolved()
    assert schedule.queue == "default" and schedule.cron.expression == "* * * * *"
