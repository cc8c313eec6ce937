"""Property tests for ``awa.cron.expression`` (pure; no database).

Expressions are built from small field generators (``*``, numbers, ranges, steps, lists;
five fields, or six with leading seconds) and evaluated over random UTC windows, many of
them placed on a DST transition of the zone. The fires are checked against a reference
model written here: croniter iterated over *naive* local wall-clock times (no timezone
arithmetic involved, so no DST code of croniter's is trusted), each wall time then mapped
to UTC by the rule documented in the module (and ADR 005):

- a wall time inside a spring-forward gap fires at the end of the gap;
- a repeated wall time fires at its first occurrence, and also at its second one when the
  hour field is ``*`` or ``*/n`` (elapsed-time schedules).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from awa.cron import CronExpression
from awa.errors import ValidationError

ZONES = (
    "UTC",
    "Asia/Kolkata",  # fixed +05:30
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "America/Santiago",  # transitions at local midnight: the day boundary moves
    "Pacific/Chatham",  # +12:45 / +13:45
)

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
THOROUGH = settings(FAST, max_examples=80)

# --- reference model -----------------------------------------------------------------------


@cache
def transitions(zone_name: str) -> tuple[datetime, ...]:
    """UTC instants at which the zone's offset changes, 2025–2027 (found by bisection)."""
    zone = ZoneInfo(zone_name)
    out: list[datetime] = []
    step = timedelta(hours=6)
    t = datetime(2025, 1, 1, tzinfo=UTC)
    while t < datetime(2028, 1, 1, tzinfo=UTC):
        if t.astimezone(zone).utcoffset() != (t + step).astimezone(zone).utcoffset():
            out.append(_offset_change(zone, t, t + step))
        t += step
    return tuple(out)


def _offset_change(zone: ZoneInfo, lo: datetime, hi: datetime) -> datetime:
    """The first whole second in ``(lo, hi]`` with ``hi``'s offset."""
    target = hi.astimezone(zone).utcoffset()
    a, b = 0, int((hi - lo).total_seconds())
    while b - a > 1:
        mid = (a + b) // 2
        if (lo + timedelta(seconds=mid)).astimezone(zone).utcoffset() == target:
            b = mid
        else:
            a = mid
    return lo + timedelta(seconds=b)


def wall_to_instants(wall: datetime, zone: ZoneInfo, elapsed: bool) -> list[datetime]:
    """The UTC instants at which a matching naive wall-clock time fires (documented rule)."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    if first.astimezone(zone).replace(tzinfo=None) == wall:  # repeated (fall back)
        return [first, second] if elapsed else [first]
    # Skipped (spring forward): an elapsed-time expression has no fire in the missing hour;
    # a time of day fires at the end of the gap (fold=1 reads the wall with the new offset,
    # before the change; fold=0 with the old one, after it).
    if elapsed:
        return []
    return [_offset_change(zone, second, first)]


def reference_fires(
    expression: str, zone_name: str, after: datetime, until: datetime, limit: int
) -> list[datetime]:
    """The first ``limit`` fires in ``(after, until]`` by the documented rule."""
    zone = ZoneInfo(zone_name)
    fields = expression.split()
    six = len(fields) == 6
    hour = fields[2] if six else fields[1]
    elapsed = hour == "*" or hour.startswith("*/")
    samples = [after + (until - after) * i / 64 for i in range(65)]
    offsets = [s.astimezone(zone).utcoffset() or timedelta(0) for s in samples]
    lo = (after + min(offsets)).replace(tzinfo=None) - timedelta(seconds=1)
    hi = (until + max(offsets)).replace(tzinfo=None)
    it = croniter(expression, lo, second_at_beginning=six)
    found: set[datetime] = set()
    while True:
        wall: datetime = it.get_next(datetime)
        if wall > hi:
            break
        found.update(t for t in wall_to_instants(wall, zone, elapsed) if after < t <= until)
        # A wall time never fires before itself read with the largest offset: once `limit`
        # fires are earlier than that, later wall times cannot change the answer.
        floor = (wall - max(offsets)).replace(tzinfo=UTC)
        if len(found) >= limit and sum(t < floor for t in found) >= limit:
            break
    return sorted(found)[:limit]


# --- strategies ----------------------------------------------------------------------------


def field(lo: int, hi: int) -> st.SearchStrategy[str]:
    number = st.integers(lo, hi).map(str)

    @st.composite
    def span(draw: st.DrawFn) -> str:
        a = draw(st.integers(lo, hi))
        b = draw(st.integers(a, hi))
        step = draw(st.one_of(st.none(), st.integers(1, hi - lo + 1)))
        return f"{a}-{b}" if step is None else f"{a}-{b}/{step}"

    item = st.one_of(number, span())
    return st.one_of(
        st.just("*"),
        st.integers(1, max(2, (hi - lo + 1) // 2)).map(lambda s: f"*/{s}"),
        item,
        st.lists(item, min_size=2, max_size=4).map(",".join),
    )


def loose(lo: int, hi: int) -> st.SearchStrategy[str]:
    """A field that is mostly ``*``: restrictive day, month and weekday fields would leave
    most windows of a few days empty."""
    return st.one_of(st.just("*"), st.just("*"), st.just("*"), field(lo, hi))


def expressions(hours: st.SearchStrategy[str], dated: bool = True) -> st.SearchStrategy[str]:
    """Five fields, or six with seconds. Day of month stays within 1..28 so that every
    generated expression does fire; ``dated=False`` leaves day, month and weekday ``*``."""
    days = (
        st.tuples(loose(1, 28), loose(1, 12), loose(0, 6)).map(" ".join)
        if dated
        else st.just("* * *")
    )
    five = st.tuples(field(0, 59), hours, days).map(" ".join)
    return st.one_of(five, st.tuples(field(0, 59), five).map(" ".join))


five_fields = expressions(field(0, 23)).filter(lambda e: len(e.split()) == 5)


def hours_near(zone: ZoneInfo, edge: datetime) -> list[int]:
    """Local hours around a transition, including the skipped or repeated one."""
    before = (edge - timedelta(seconds=1)).astimezone(zone).replace(tzinfo=None)
    after = edge.astimezone(zone).replace(tzinfo=None)
    walls = [before + timedelta(seconds=1), before, after]
    return sorted({(w + timedelta(hours=d)).hour for w in walls for d in (-1, 0, 1)})


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, str, datetime, datetime]:
    """``(expression, zone, after, until)``: anywhere in 2025–2027, or (half the time) a
    window around a DST transition with an hour field likely to hit the changed hour."""
    zone_name = draw(st.sampled_from(ZONES))
    edges = transitions(zone_name)
    if len(edges) > 0 and draw(st.booleans()):
        edge = draw(st.sampled_from(edges))
        near = hours_near(ZoneInfo(zone_name), edge)
        hours = st.one_of(
            st.just("*"),
            st.integers(1, 3).map(lambda k: f"*/{k}"),
            st.sampled_from(near).map(str),
            st.lists(st.sampled_from(near), min_size=2, max_size=3, unique=True).map(
                lambda hs: ",".join(map(str, hs))
            ),
        )
        expression = draw(expressions(hours, dated=draw(st.integers(0, 4)) == 0))
        after = edge - timedelta(seconds=draw(spread(3 * 3600)))
        longest = 4 * 3600 if len(expression.split()) == 6 else 2 * 86400
    else:
        expression = draw(expressions(field(0, 23)))
        after = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=draw(spread(3 * 365 * 86400)))
        longest = 3 * 3600 if len(expression.split()) == 6 else 3 * 86400
    after += timedelta(microseconds=draw(st.sampled_from([0, 0, 1, 500_000, 999_999])))
    return expression, zone_name, after, after + timedelta(seconds=draw(spread(longest)))


def spread(top: int) -> st.SearchStrategy[int]:
    """0..top, not crowded near 0 (hypothesis favours small integers)."""
    return st.one_of(st.integers(0, top), st.integers(top // 3, top), st.just(top))


# --- properties ----------------------------------------------------------------------------


@THOROUGH
@given(cases(), st.integers(1, 50))
def test_fires_match_reference_model(case: tuple[str, str, datetime, datetime], limit: int) -> None:
    expression, zone_name, after, until = case
    cron = CronExpression(expression, zone_name)
    fires = cron.fires_between(after, until, limit)
    assert fires == reference_fires(expression, zone_name, after, until, limit)


@FAST
@given(cases())
def test_fires_are_increasing_aware_utc_inside_window_and_match(
    case: tuple[str, str, datetime, datetime],
) -> None:
    expression, zone_name, after, until = case
    cron = CronExpression(expression, zone_name)
    zone = ZoneInfo(zone_name)
    fires = cron.fires_between(after, until, 5000)
    assert all(a < b for a, b in pairwise(fires))
    assert all(f.tzinfo is UTC and after < f <= until for f in fires)
    for fire in fires[:20] + fires[20:][-20:]:  # croniter.match is slow: both ends
        local = fire.astimezone(zone)
        wall = local.replace(tzinfo=None)
        if croniter.match(expression, wall, second_at_beginning=cron.has_seconds):
            continue
        # Not a match on the wall clock: only allowed at the end of a skipped hour, for a
        # wall time inside the gap that does match.
        before = (fire - timedelta(microseconds=1)).astimezone(zone)
        assert before.utcoffset() != local.utcoffset(), (fire, local)
        gap = (local.utcoffset() or timedelta(0)) - (before.utcoffset() or timedelta(0))
        assert gap > timedelta(0)
        skipped = croniter(
            expression, wall - gap - timedelta(seconds=1), second_at_beginning=cron.has_seconds
        ).get_next(datetime)
        assert skipped < wall, (fire, local, skipped)


@FAST
@given(cases())
def test_next_after_is_first_fire(case: tuple[str, str, datetime, datetime]) -> None:
    expression, zone_name, after, _ = case
    cron = CronExpression(expression, zone_name)
    first = cron.next_after(after)
    assert cron.fires_between(after, after + timedelta(days=800), 1) == [first]
    assert first > after
    assert first.tzinfo is UTC
    assert cron.interval_at(after) == cron.next_after(first) - first > timedelta(0)


@FAST
@given(cases())
def test_last_at_or_before_is_the_fire_just_before(
    case: tuple[str, str, datetime, datetime],
) -> None:
    """What missed-fire detection looks for: the latest instant ``fires_between`` gives at
    or before ``at`` (and ``next_after`` it is after ``at``)."""
    expression, zone_name, _, at = case
    cron = CronExpression(expression, zone_name)
    latest = cron.last_at_or_before(at)
    assert latest <= at
    assert latest.tzinfo is UTC
    assert cron.next_after(latest) > at
    assert cron.fires_between(latest - timedelta(microseconds=1), at, 1) == [latest]


@FAST
@given(cases(), st.integers(0, 1000))
def test_windows_compose(case: tuple[str, str, datetime, datetime], cut_permille: int) -> None:
    """Evaluating ``(a, c]`` in two passes split at any ``b`` gives the same fires: what the
    evaluator relies on when it advances its mark between passes."""
    expression, zone_name, after, until = case
    cron = CronExpression(expression, zone_name)
    cut = after + (until - after) * cut_permille / 1000
    whole = cron.fires_between(after, until, 5000)
    head = cron.fires_between(after, cut, 5000)
    assert whole == (head + cron.fires_between(cut, until, 5000))[:5000]


@FAST
@given(cases())
def test_boundaries_are_half_open(case: tuple[str, str, datetime, datetime]) -> None:
    expression, zone_name, after, _ = case
    cron = CronExpression(expression, zone_name)
    fire = cron.next_after(after)
    tick = timedelta(microseconds=1)
    assert cron.fires_between(fire - tick, fire, 5) == [fire]
    assert fire not in cron.fires_between(fire, fire + timedelta(days=800), 1)
    assert cron.next_after(fire - tick) == fire


@FAST
@given(cases(), st.sampled_from(ZONES))
def test_window_timezone_does_not_matter(
    case: tuple[str, str, datetime, datetime], other: str
) -> None:
    expression, zone_name, after, until = case
    cron = CronExpression(expression, zone_name)
    zone = ZoneInfo(other)
    expected = cron.fires_between(after, until, 50)
    assert cron.fires_between(after.astimezone(zone), until.astimezone(zone), 50) == expected


@FAST
@given(five_fields, st.sampled_from(ZONES))
def test_whitespace_is_normalised(expression: str, zone_name: str) -> None:
    cron = CronExpression("  " + expression.replace(" ", " \t "), zone_name)
    assert cron.expression == expression
    assert not cron.has_seconds


def test_empty_or_reversed_window_and_zero_limit_yield_nothing() -> None:
    cron = CronExpression("* * * * * *")
    t = datetime(2026, 5, 1, tzinfo=UTC)
    assert cron.fires_between(t, t, 10) == []
    assert cron.fires_between(t, t - timedelta(hours=1), 10) == []
    assert cron.fires_between(t, t + timedelta(hours=1), 0) == []
    assert len(cron.fires_between(t, t + timedelta(hours=1), 10)) == 10


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "   ",
        "* * * *",
        "* * * * * * *",
        "61 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * 32 * *",
        "* * * 13 *",
        "* * * * 8",
        "60 * * * * *",
        "a b c d e",
        "*/0 * * * *",
        "1,,2 * * * *",
        "-1 * * * *",
        "@daily",
        None,
        5,
    ],
)
def test_bad_expression_raises_validation_error(expression: object) -> None:
    with pytest.raises(ValidationError) as info:
        CronExpression(expression, "UTC")  # type: ignore[arg-type]
    assert info.value.field == "expression"


@pytest.mark.parametrize("expression", ["0 0 30 2 *", "0 0 31 4 *", "0 0 0 31 11 *"])
def test_expression_that_never_fires_is_rejected(expression: str) -> None:
    """Well-formed but impossible dates: rejected when declared, not in the leader later."""
    with pytest.raises(ValidationError) as info:
        CronExpression(expression, "UTC")
    assert info.value.field == "expression"


def test_rare_but_possible_date_is_accepted() -> None:
    cron = CronExpression("0 12 29 2 *", "Europe/Berlin")
    fire = cron.next_after(datetime(2026, 1, 1, tzinfo=UTC))
    assert fire == datetime(2028, 2, 29, 11, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "timezone", ["Mars/Olympus", "", "../etc/passwd", "UTC+5", "/etc/localtime", None, 5]
)
def test_unknown_timezone_raises_validation_error(timezone: object) -> None:
    with pytest.raises(ValidationError) as info:
        CronExpression("* * * * *", timezone)  # type: ignore[arg-type]
    assert info.value.field == "timezone"


@pytest.mark.parametrize("bad", [datetime(2026, 1, 1), "2026-01-01T00:00:00Z", None])
def test_naive_or_non_datetime_bounds_are_rejected(bad: object) -> None:
    cron = CronExpression("* * * * *")
    aware = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValidationError) as info:
        cron.fires_between(bad, aware, 1)  # type: ignore[arg-type]
    assert info.value.field == "after"
    with pytest.raises(ValidationError) as info:
        cron.fires_between(aware, bad, 1)  # type: ignore[arg-type]
    assert info.value.field == "until"
    with pytest.raises(ValidationError):
        cron.next_after(bad)  # type: ignore[arg-type]


# --- DST, by example (2026) ------------------------------------------------------------------
# Berlin: 29 Mar 02:00 CET -> 03:00 CEST; 25 Oct 03:00 CEST -> 02:00 CET.
# New York: 8 Mar 02:00 EST -> 03:00 EDT; 1 Nov 02:00 EDT -> 01:00 EST.


def local_fires(expression: str, zone_name: str, day: str) -> list[datetime]:
    """Fires (in UTC) whose local date is ``day``.

    Kept in UTC on purpose: an aware datetime at an ambiguous local time never compares
    equal to one in another zone (PEP 495), so local values would make ``==`` lie.
    """
    zone = ZoneInfo(zone_name)
    start = datetime.fromisoformat(day).replace(tzinfo=zone)
    cron = CronExpression(expression, zone_name)
    fires = cron.fires_between(start - timedelta(days=1), start + timedelta(days=2), 10_000)
    return [f for f in fires if f.astimezone(zone).date() == start.date()]


@pytest.mark.parametrize(
    ("zone_name", "day", "expected_utc"),
    [
        ("Europe/Berlin", "2026-03-29", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        ("America/New_York", "2026-03-08", datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),
    ],
)
def test_spring_forward_fixed_time_fires_once_at_end_of_gap(
    zone_name: str, day: str, expected_utc: datetime
) -> None:
    fires = local_fires("30 2 * * *", zone_name, day)
    assert fires == [expected_utc]
    local = fires[0].astimezone(ZoneInfo(zone_name))
    assert (local.hour, local.minute) == (3, 0)
    # The days around it are untouched.
    zone = ZoneInfo(zone_name)
    start = datetime.fromisoformat(day).replace(tzinfo=zone)
    cron = CronExpression("30 2 * * *", zone_name)
    around = cron.fires_between(start - timedelta(days=3), start + timedelta(days=3), 100)
    assert len(around) == 6
    assert [f.astimezone(zone).strftime("%H:%M") for f in around] == [
        "02:30",
        "02:30",
        "02:30",
        "03:00",
        "02:30",
        "02:30",
    ]


@pytest.mark.parametrize(
    ("zone_name", "day", "expression", "expected_utc"),
    [
        ("Europe/Berlin", "2026-10-25", "30 2 * * *", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        (
            "America/New_York",
            "2026-11-01",
            "30 1 * * *",
            datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
        ),
        (
            "Europe/Berlin",
            "2026-10-25",
            "0 30 2 * * *",
            datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        ),
    ],
)
def test_fall_back_fixed_time_fires_once_at_first_occurrence(
    zone_name: str, day: str, expression: str, expected_utc: datetime
) -> None:
    assert local_fires(expression, zone_name, day) == [expected_utc]
    # Also when the evaluation window starts between the two occurrences.
    cron = CronExpression(expression, zone_name)
    between = expected_utc + timedelta(minutes=45)
    assert cron.next_after(between) == expected_utc + timedelta(days=1, hours=1)


@pytest.mark.parametrize(
    ("zone_name", "start", "end"),
    [
        # the repeated hours, with an hour of margin each side
        (
            "Europe/Berlin",
            datetime(2026, 10, 24, 23, tzinfo=UTC),
            datetime(2026, 10, 25, 3, tzinfo=UTC),
        ),
        (
            "America/New_York",
            datetime(2026, 11, 1, 4, tzinfo=UTC),
            datetime(2026, 11, 1, 8, tzinfo=UTC),
        ),
        # the skipped hours
        (
            "Europe/Berlin",
            datetime(2026, 3, 28, 23, tzinfo=UTC),
            datetime(2026, 3, 29, 3, tzinfo=UTC),
        ),
        (
            "America/New_York",
            datetime(2026, 3, 8, 5, tzinfo=UTC),
            datetime(2026, 3, 8, 9, tzinfo=UTC),
        ),
    ],
)
def test_every_30_minutes_is_elapsed_time_across_dst(
    zone_name: str, start: datetime, end: datetime
) -> None:
    cron = CronExpression("*/30 * * * *", zone_name)
    fires = cron.fires_between(start, end, 100)
    expected = [start + timedelta(minutes=30 * i) for i in range(1, 9)]
    assert fires == expected


def test_repeated_hour_fires_at_both_occurrences_for_hourly_step() -> None:
    zone = ZoneInfo("America/New_York")
    fires = local_fires("15 */1 * * *", "America/New_York", "2026-11-01")
    walls = [f.astimezone(zone).strftime("%H:%M%z") for f in fires]
    assert walls[:4] == ["00:15-0400", "01:15-0400", "01:15-0500", "02:15-0500"]
    assert len(fires) == 25  # the day has 25 hours
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(fires))


def test_skipped_wall_times_collapse_into_one_fire() -> None:
    """A fixed-hour expression with several wall times in the skipped hour fires once."""
    fires = local_fires("*/20 2 * * *", "Europe/Berlin", "2026-03-29")
    assert fires == [datetime(2026, 3, 29, 1, 0, tzinfo=UTC)]
    assert local_fires("* * 2 * * *", "Europe/Berlin", "2026-03-29") == fires


def test_midnight_transition_keeps_the_day() -> None:
    """Santiago skips 00:00–00:59 on 6 Sep 2026: a daily 00:15 fires at 01:00 that day."""
    fires = local_fires("15 0 * * *", "America/Santiago", "2026-09-06")
    assert fires == [datetime(2026, 9, 6, 4, 0, tzinfo=UTC)]
    assert local_fires("15 0 6 9 *", "America/Santiago", "2026-09-06") == fires


def test_window_bounds_in_local_time_across_a_repeated_hour() -> None:
    """Bounds are instants whatever their zone. (Two datetimes of one zone compare by wall
    clock, so a window given in Lord Howe time across its fall-back half hour once came
    out empty.)"""
    zone = ZoneInfo("Australia/Lord_Howe")
    cron = CronExpression("* * * * *", "Australia/Lord_Howe")
    after = datetime(2025, 4, 5, 14, 59, 59, tzinfo=UTC)  # 01:59:59+11:00
    until = datetime(2025, 4, 5, 15, 0, tzinfo=UTC)  # 01:30:00+10:30, the second time
    expected = [until]
    assert cron.fires_between(after, until, 5) == expected
    assert cron.fires_between(after.astimezone(zone), until.astimezone(zone), 5) == expected
    assert cron.next_after(after.astimezone(zone)) == until


def test_fall_back_last_fire_is_the_one_that_fired() -> None:
    """croniter's ``get_prev`` answers the second 02:30 (never fired) after a fall back."""
    cron = CronExpression("30 2 * * *", "Europe/Berlin")
    at = datetime(2026, 10, 25, 1, 45, tzinfo=UTC)  # 02:45 CET, after the second 02:30
    assert cron.last_at_or_before(at) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize("hours", ["*/2", "*/1", "0-23/2"])
def test_skipped_wall_time_is_treated_alike_for_star_and_step_hours(hours: str) -> None:
    """``1 *`` and ``1 */2`` both have 02:01 on the skipped day; they must treat it the same
    way (no fire: elapsed time), while ``0-23/2`` names hours, so it is a time of day and
    moves to the gap's end. (croniter's tz-aware iteration shifted one and dropped the
    other.)"""
    start = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)
    end = start + timedelta(hours=6)
    every_hour = set(CronExpression("1 * * * *", "Europe/Berlin").fires_between(start, end, 99))
    stepped = set(CronExpression(f"1 {hours} * * *", "Europe/Berlin").fires_between(start, end, 99))
    shifted = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST
    if CronExpression(f"1 {hours} * * *", "Europe/Berlin").fixed_hour:
        assert shifted in stepped  # a time of day: documented to move to the gap's end
        assert stepped - {shifted} <= every_hour
    else:
        assert shifted not in stepped and shifted not in every_hour  # elapsed time: no fire
        assert stepped <= every_hour


def test_elapsed_time_expression_does_not_fire_twice_after_a_skipped_hour() -> None:
    """ADR 005: an hour-``*`` expression has no fire in a skipped hour (Vixie cron), so its
    fires stay an hour apart across spring forward."""
    cron = CronExpression("1 * * * *", "Europe/Berlin")
    start = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)
    fires = cron.fires_between(start, start + timedelta(hours=6), 100)
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(fires))
