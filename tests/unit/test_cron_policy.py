"""Property tests for ``awa.cron.policy.plan_fires`` and the policy spellings (pure; no
database).

Due instants are generated as lateness in seconds relative to ``now`` (so the window,
``on_time`` and the catch-up bound are hit on both sides), with duplicates, unsorted
order and, sometimes, instants later than ``now``, which are not due yet. Each property is
stated from the module docstrings (``awa.cron.policy``, ``awa.cron.schedule``), not from
the implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from awa.cron import Action, CronSchedule, Misfire, Overlap, Plan, PreviousJob, plan_fires
from awa.errors import ValidationError

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

FAST = settings(max_examples=60, deadline=None)


@dataclass(frozen=True)
class Case:
    due: list[datetime]
    now: datetime
    misfire: Misfire
    overlap: Overlap
    window_s: float
    on_time_s: float
    max_catchup: int
    previous: PreviousJob

    def plan(self) -> Plan:
        return plan_fires(
            self.due,
            now=self.now,
            misfire=self.misfire,
            overlap=self.overlap,
            window_s=self.window_s,
            on_time_s=self.on_time_s,
            max_catchup=self.max_catchup,
            previous=self.previous,
        )

    @property
    def past(self) -> list[datetime]:
        """The due instants proper: distinct, oldest first, not after ``now``."""
        return sorted({t for t in self.due if t <= self.now})

    def late(self, instant: datetime) -> float:
        return (self.now - instant).total_seconds()

    @property
    def reach_s(self) -> float:
        """How late an instant may be and still be fired (catch-up window or on-time)."""
        return max(self.window_s, self.on_time_s)


# Lateness in seconds: mostly a few windows' worth, plus exact boundary values.
lateness = st.one_of(
    st.integers(0, 4000),
    st.sampled_from([0, 1, 5, 59, 60, 61, 300, 3599, 3600, 3601]),
    st.floats(0, 4000, allow_nan=False).map(lambda s: round(s, 3)),
)


ANY_MISFIRE = st.sampled_from(Misfire)
ANY_OVERLAP = st.sampled_from(Overlap)
ANY_PREVIOUS = st.sampled_from(PreviousJob)


@st.composite
def cases(
    draw: st.DrawFn,
    misfire: st.SearchStrategy[Misfire] = ANY_MISFIRE,
    overlap: st.SearchStrategy[Overlap] = ANY_OVERLAP,
    previous: st.SearchStrategy[PreviousJob] = ANY_PREVIOUS,
    future: bool = True,
) -> Case:
    offsets = draw(st.lists(lateness, max_size=40))
    if future and draw(st.booleans()):
        offsets += draw(st.lists(st.integers(-600, -1), max_size=3))
    due = [NOW - timedelta(seconds=s) for s in offsets]
    if len(due) > 0 and draw(st.booleans()):
        due += draw(st.lists(st.sampled_from(due), max_size=5))  # duplicates
    due = draw(st.permutations(due))
    return Case(
        due=due,
        now=NOW,
        misfire=draw(misfire),
        overlap=draw(overlap),
        window_s=draw(st.sampled_from([0.0, 1.0, 60.0, 600.0, 3600.0])),
        on_time_s=draw(st.sampled_from([0.0, 1.0, 5.0, 60.0])),
        max_catchup=draw(st.integers(1, 12)),
        previous=draw(previous),
    )


# --- coverage and order ----------------------------------------------------------------------


@FAST
@given(cases())
def test_every_due_instant_up_to_the_mark_is_decided_once_and_none_after(case: Case) -> None:
    plan = case.plan()
    decided = [d.instant for d in plan.decisions]
    assert decided == [t for t in case.past if t <= plan.evaluated_through]
    assert plan.evaluated_through <= case.now


@FAST
@given(cases())
def test_decisions_are_in_time_order_and_fires_come_from_due(case: Case) -> None:
    plan = case.plan()
    instants = [d.instant for d in plan.decisions]
    assert instants == sorted(instants)
    assert len(set(instants)) == len(instants)
    assert set(plan.fires) <= set(case.due)
    for decision in plan.decisions:
        assert decision.late_s == pytest.approx(case.late(decision.instant))
        assert decision.late_s >= 0


@FAST
@given(cases())
def test_instants_not_yet_due_are_never_decided(case: Case) -> None:
    plan = case.plan()
    assert all(d.instant <= case.now for d in plan.decisions)


@FAST
@given(cases())
def test_nothing_older_than_the_window_is_ever_fired(case: Case) -> None:
    plan = case.plan()
    assert all(case.late(t) <= case.reach_s for t in plan.fires)
    assert all(case.late(t) <= case.reach_s for t in plan.instants(Action.OVERLAP))


@FAST
@given(cases())
def test_without_due_instants_the_mark_moves_to_now(case: Case) -> None:
    plan = plan_fires(
        [t for t in case.due if t > case.now],
        now=case.now,
        misfire=case.misfire,
        overlap=case.overlap,
        window_s=case.window_s,
        on_time_s=case.on_time_s,
        max_catchup=case.max_catchup,
        previous=case.previous,
    )
    assert plan.decisions == ()
    assert plan.evaluated_through == case.now


def test_an_instant_after_now_does_not_hide_the_latest_due_one() -> None:
    """A clock slightly behind the one that listed the instants: catchup_latest once picked
    the not-yet-due instant as "latest" and recorded the due one as missed."""
    case = Case(
        due=[NOW - timedelta(seconds=30), NOW + timedelta(seconds=1)],
        now=NOW,
        misfire=Misfire.CATCHUP_LATEST,
        overlap=Overlap.ALLOW,
        window_s=3600.0,
        on_time_s=5.0,
        max_catchup=100,
        previous=PreviousJob.NONE,
    )
    plan = case.plan()
    assert plan.fires == [NOW - timedelta(seconds=30)]
    assert plan.missed == []
    assert plan.evaluated_through == NOW


# --- misfire policies (overlap=allow isolates them) --------------------------------------------

ALLOW = st.just(Overlap.ALLOW)


@FAST
@given(cases(misfire=st.just(Misfire.SKIP), overlap=ALLOW))
def test_skip_fires_on_time_instants_and_records_the_rest_as_missed(case: Case) -> None:
    plan = case.plan()
    assert plan.evaluated_through == case.now
    assert plan.fires == [t for t in case.past if case.late(t) <= case.on_time_s]
    assert plan.missed == [t for t in case.past if case.late(t) > case.on_time_s]


@FAST
@given(cases(misfire=st.just(Misfire.CATCHUP_LATEST), overlap=ALLOW))
def test_catchup_latest_fires_at_most_the_latest_instant_in_the_window(case: Case) -> None:
    """On-time instants fire as normal triggers; when there is none, at most one late
    instant fires: the latest within the window."""
    plan = case.plan()
    punctual = [t for t in case.past if case.late(t) <= case.on_time_s]
    in_window = [t for t in case.past if case.late(t) <= case.reach_s]
    late_fires = [t for t in plan.fires if case.late(t) > case.on_time_s]
    assert len(late_fires) <= 1
    assert plan.fires == (punctual or in_window[-1:])
    assert plan.missed == [t for t in case.past if t not in plan.fires]
    assert plan.evaluated_through == case.now


@FAST
@given(cases(misfire=st.just(Misfire.CATCHUP_ALL), overlap=ALLOW))
def test_catchup_all_fires_the_oldest_instants_in_the_window_within_its_bound(case: Case) -> None:
    plan = case.plan()
    in_window = [t for t in case.past if case.late(t) <= case.reach_s]
    assert plan.fires == in_window[: case.max_catchup]
    assert len(plan.fires) <= case.max_catchup
    if len(in_window) > case.max_catchup:
        assert plan.evaluated_through == plan.fires[-1]
    else:
        assert plan.evaluated_through == case.now
    older = [t for t in case.past if case.late(t) > case.reach_s]
    assert plan.missed == older


@FAST
@given(cases(overlap=ALLOW))
def test_on_time_instants_are_never_missed_under_skip_or_catchup_all(case: Case) -> None:
    """An instant at most ``on_time_s`` late is a normal trigger: it is fired, or (when the
    catch-up bound cuts the pass short) left for the next pass, never recorded missed."""
    plan = case.plan()
    assert all(case.late(t) > case.on_time_s for t in plan.missed)


def test_catchup_latest_does_not_miss_on_time_instants() -> None:
    """ADR 005: on-time instants are normal triggers under every policy; catchup_latest's
    "at most one" is about late instants."""
    case = Case(
        due=[NOW - timedelta(seconds=2), NOW - timedelta(seconds=1)],
        now=NOW,
        misfire=Misfire.CATCHUP_LATEST,
        overlap=Overlap.ALLOW,
        window_s=3600.0,
        on_time_s=5.0,
        max_catchup=100,
        previous=PreviousJob.NONE,
    )
    assert case.plan().missed == []


# --- overlap policies ----------------------------------------------------------------------


@FAST
@given(cases(overlap=st.just(Overlap.SKIP)))
def test_overlap_skip_fires_nothing_while_the_previous_job_is_pending_or_running(
    case: Case,
) -> None:
    plan = case.plan()
    if case.previous is PreviousJob.NONE:
        assert len(plan.fires) <= 1
    else:
        assert plan.fires == []


@FAST
@given(cases(overlap=st.just(Overlap.BUFFER_ONE)))
def test_buffer_one_keeps_at_most_one_fire_waiting(case: Case) -> None:
    plan = case.plan()
    if case.previous is PreviousJob.PENDING:
        assert plan.fires == []
    else:
        assert len(plan.fires) <= 1


@FAST
@given(cases(overlap=st.just(Overlap.ALLOW)))
def test_allow_never_reports_overlap(case: Case) -> None:
    assert case.plan().instants(Action.OVERLAP) == []


@FAST
@given(cases())
def test_overlap_only_withholds_what_the_misfire_policy_would_fire(case: Case) -> None:
    """The overlap policy decides among the misfire policy's fires; it never turns a miss
    into a fire, never changes the mark, and what it withholds is reported as overlap."""
    plan = case.plan()
    allowed = plan_fires(
        case.due,
        now=case.now,
        misfire=case.misfire,
        overlap=Overlap.ALLOW,
        window_s=case.window_s,
        on_time_s=case.on_time_s,
        max_catchup=case.max_catchup,
        previous=case.previous,
    )
    assert plan.evaluated_through == allowed.evaluated_through
    assert plan.missed == allowed.missed
    assert sorted(plan.fires + plan.instants(Action.OVERLAP)) == allowed.fires
    # Fires go first: once one instant is withheld, the later ones are too.
    actions = [d.action for d in plan.decisions if d.action is not Action.MISSED]
    assert actions == sorted(actions, key=lambda a: a is Action.OVERLAP)


# --- failover: successive passes -----------------------------------------------------------


@st.composite
def pass_runs(draw: st.DrawFn) -> tuple[Case, list[tuple[datetime, PreviousJob]]]:
    """A schedule's instants over an outage, and the evaluation passes that follow: each at
    a ``now`` no earlier than the last, with whatever the previous job's state is then."""
    case = draw(cases(future=False))
    base = min(case.due, default=NOW)
    nows = sorted(
        draw(st.lists(st.integers(0, 5000), min_size=1, max_size=8)),
    )
    passes = [(base + timedelta(seconds=s), draw(st.sampled_from(PreviousJob))) for s in nows]
    return case, passes


@FAST
@given(pass_runs(), st.integers(0, 40))
def test_successive_passes_never_fire_an_instant_twice(
    run: tuple[Case, list[tuple[datetime, PreviousJob]]], cut: int
) -> None:
    """Each pass sees only the instants after the mark the previous pass wrote (and, for
    the first pass, possibly only a prefix of them: an evaluator that listed fewer); across
    passes no instant is decided twice, so none is fired twice."""
    case, passes = run
    instants = sorted(set(case.due))
    mark = datetime.min.replace(tzinfo=UTC)
    decided: list[datetime] = []
    fired: list[datetime] = []
    for number, (at, previous) in enumerate(passes):
        now = max(at, mark)
        due = [t for t in instants if mark < t <= now]
        if number == 0:
            due = due[:cut]
        plan = plan_fires(
            due,
            now=now,
            misfire=case.misfire,
            overlap=case.overlap,
            window_s=case.window_s,
            on_time_s=case.on_time_s,
            max_catchup=case.max_catchup,
            previous=previous,
        )
        assert plan.evaluated_through >= mark
        assert all(mark < d.instant <= plan.evaluated_through for d in plan.decisions)
        decided += [d.instant for d in plan.decisions]
        fired += plan.fires
        mark = plan.evaluated_through
    assert len(fired) == len(set(fired))
    assert len(decided) == len(set(decided))
    assert decided == sorted(decided)


@FAST
@given(pass_runs())
def test_passes_that_list_everything_decide_every_instant_once(
    run: tuple[Case, list[tuple[datetime, PreviousJob]]],
) -> None:
    """When every pass is given all instants in ``(mark, now]``, each instant up to the
    final mark is decided exactly once, and a bounded catch-up finishes given enough
    passes."""
    case, passes = run
    instants = sorted(set(case.due))
    mark = datetime.min.replace(tzinfo=UTC)
    decided: list[datetime] = []
    last_now = passes[-1][0]
    extra = [(last_now, PreviousJob.NONE)] * (len(instants) + 1)
    for at, previous in passes + extra:
        now = max(at, mark)
        plan = plan_fires(
            [t for t in instants if mark < t <= now],
            now=now,
            misfire=case.misfire,
            overlap=case.overlap,
            window_s=case.window_s,
            on_time_s=case.on_time_s,
            max_catchup=case.max_catchup,
            previous=previous,
        )
        decided += [d.instant for d in plan.decisions]
        mark = plan.evaluated_through
    assert mark == last_now
    assert decided == [t for t in instants if t <= last_now]


# --- policy spellings ----------------------------------------------------------------------


def schedule(**options: object) -> CronSchedule:
    return CronSchedule(name="nightly", expression="0 3 * * *", kind="report", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("catchup", Misfire.CATCHUP_ALL),
        ("catch_up", Misfire.CATCHUP_ALL),
        ("compress", Misfire.CATCHUP_LATEST),
        ("coalesce", Misfire.CATCHUP_LATEST),
        (" Coalesce ", Misfire.CATCHUP_LATEST),
        ("CATCHUP", Misfire.CATCHUP_ALL),
        ("skip", Misfire.SKIP),
        ("catchup_all", Misfire.CATCHUP_ALL),
        ("catchup_latest", Misfire.CATCHUP_LATEST),
        (Misfire.CATCHUP_LATEST, Misfire.CATCHUP_LATEST),
    ],
)
def test_misfire_spellings(spelling: str, expected: Misfire) -> None:
    declared = schedule(misfire=spelling)
    assert declared.misfire is expected
    assert declared.declaration()["misfire"] == expected.value


def test_aliases_spell_the_same_declaration() -> None:
    """An alias is only a spelling: the stored declaration (and its fingerprint) is the
    canonical one, so renaming ``catchup`` to ``catchup_all`` in code changes nothing."""
    assert (
        schedule(misfire="catchup").fingerprint() == schedule(misfire="catchup_all").fingerprint()
    )
    assert schedule(misfire="compress").fingerprint() == schedule(misfire="coalesce").fingerprint()


@pytest.mark.parametrize(
    ("spelling", "expected"), [("buffer_one", Overlap.BUFFER_ONE), (" SKIP", Overlap.SKIP)]
)
def test_overlap_spellings(spelling: str, expected: Overlap) -> None:
    assert schedule(overlap=spelling).overlap is expected


ACCEPTED_MISFIRE = {
    "skip",
    "catchup_all",
    "catchup_latest",
    "catchup",
    "catch_up",
    "compress",
    "coalesce",
}
ACCEPTED_OVERLAP = {"allow", "skip", "buffer_one"}


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.text(max_size=20), st.integers(), st.none()))
def test_unknown_misfire_policy_is_a_validation_error_naming_the_field(value: object) -> None:
    if isinstance(value, str) and value.strip().lower() in ACCEPTED_MISFIRE:
        return
    with pytest.raises(ValidationError) as info:
        schedule(misfire=value)
    assert info.value.field == "misfire"


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.text(max_size=20), st.integers(), st.none()))
def test_unknown_overlap_policy_is_a_validation_error_naming_the_field(value: object) -> None:
    if isinstance(value, str) and value.strip().lower() in ACCEPTED_OVERLAP:
        return
    with pytest.raises(ValidationError) as info:
        schedule(overlap=value)
    assert info.value.field == "overlap"


@pytest.mark.parametrize("value", ["catchup-all", "latest", "none", "", "buffer_one"])
def test_misfire_near_misses_are_rejected(value: str) -> None:
    with pytest.raises(ValidationError, match="misfire"):
        schedule(misfire=value)
