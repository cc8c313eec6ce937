"""Property tests for the maintenance overrun tracker (pure state machine, no database).

Sample sequences are generated per zone (over / under / deadband, plus exact boundaries and
unconstrained values) so every transition is exercised. The tests classify each sample
themselves with the documented formula ``r = (lateness + duration) / interval`` and check the
tracker against simple reference models written here, never against the tracker itself.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from awa.maintenance.overrun import (
    BranchHealth,
    Observation,
    OverrunPolicy,
    OverrunTracker,
    Transition,
)

OVER, UNDER, DEAD = "over", "under", "deadband"


@dataclass(frozen=True)
class Sample:
    duration: float
    lateness: float


def classify(policy: OverrunPolicy, s: Sample) -> str:
    r = (s.lateness + s.duration) / policy.interval
    if r >= policy.delayed_ratio:
        return OVER
    if r <= policy.on_time_ratio:
        return UNDER
    return DEAD


# --- strategies --------------------------------------------------------------------------

policies = st.builds(
    lambda interval, on_time, gap, k, cap: OverrunPolicy(
        interval=interval,
        on_time_ratio=on_time,
        delayed_ratio=on_time + gap,
        flip_after=k,
        duty_cycle_cap=cap,
    ),
    interval=st.floats(min_value=1e-3, max_value=1e4),
    on_time=st.floats(min_value=0.05, max_value=2.0),
    gap=st.floats(min_value=0.01, max_value=2.0),
    k=st.integers(min_value=1, max_value=5),
    cap=st.floats(min_value=0.01, max_value=1.0),
)


def _split(total: float, frac: float) -> Sample:
    lateness = total * frac
    return Sample(duration=max(total - lateness, 0.0), lateness=lateness)


def samples_for(policy: OverrunPolicy) -> st.SearchStrategy[Sample]:
    """Samples aimed at each zone, at the exact boundaries, and anywhere at all."""
    lo, hi, iv = policy.on_time_ratio, policy.delayed_ratio, policy.interval
    frac = st.floats(min_value=0.0, max_value=1.0)
    over = st.builds(
        lambda r, f: _split(r * iv, f), st.floats(min_value=hi * 1.001, max_value=hi * 4), frac
    )
    under = st.builds(lambda r, f: _split(r * iv, f), st.floats(min_value=0.0, max_value=lo), frac)
    dead = st.builds(
        lambda r, f: _split(r * iv, f),
        st.floats(min_value=lo, max_value=hi, exclude_min=True, exclude_max=True),
        frac,
    )
    boundary = st.sampled_from(
        [
            Sample(duration=lo * iv, lateness=0.0),
            Sample(duration=0.0, lateness=hi * iv),
            Sample(duration=0.0, lateness=0.0),
        ]
    )
    anything = st.builds(
        Sample,
        duration=st.floats(min_value=0.0, max_value=iv * 5),
        lateness=st.floats(min_value=0.0, max_value=iv * 5),
    )
    return st.one_of(over, under, dead, boundary, anything)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[OverrunPolicy, list[Sample]]:
    policy = draw(policies)
    one = samples_for(policy)
    # Runs of repeated samples make K-long streaks (and so both flips) common.
    runs = draw(
        st.lists(st.tuples(one, st.integers(min_value=1, max_value=7)), min_size=0, max_size=20)
    )
    return policy, [s for s, n in runs for _ in range(n)]


def feed(
    policy: OverrunPolicy, samples: list[Sample]
) -> tuple[list[BranchHealth], list[Observation], OverrunTracker]:
    """Returns the health *before* each sample, each observation, and the tracker."""
    tracker = OverrunTracker(policy)
    before: list[BranchHealth] = []
    obs: list[Observation] = []
    for s in samples:
        before.append(tracker.health)
        obs.append(tracker.observe(s.duration, s.lateness))
    return before, obs, tracker


# --- reference model ---------------------------------------------------------------------


def reference_episodes(kinds: list[str], k: int) -> tuple[int, BranchHealth]:
    """Episodes and final health computed from maximal runs of equal classifications.

    A state can only flip on the K-th sample of a run of one kind, so each maximal run starts
    in the state the previous run left: an over run of length >= K starting on time is one
    episode; an under run of length >= K starting delayed is one recovery; nothing else flips.
    """
    health = BranchHealth.ON_TIME
    episodes = 0
    for kind, group in itertools.groupby(kinds):
        length = len(list(group))
        if kind == OVER and length >= k and health is BranchHealth.ON_TIME:
            episodes += 1
            health = BranchHealth.DELAYED
        elif kind == UNDER and length >= k and health is BranchHealth.DELAYED:
            health = BranchHealth.ON_TIME
    return episodes, health


# --- properties --------------------------------------------------------------------------


@settings(max_examples=300)
@given(scenarios())
def test_increment_only_after_k_over_samples_while_on_time(
    scenario: tuple[OverrunPolicy, list[Sample]],
) -> None:
    policy, samples = scenario
    k = policy.flip_after
    before, obs, _ = feed(policy, samples)
    kinds = [classify(policy, s) for s in samples]
    for i, o in enumerate(obs):
        assert o.overrun_increment in (0, 1)
        if o.overrun_increment:
            assert i >= k - 1
            window = range(i - k + 1, i + 1)
            assert all(kinds[j] == OVER for j in window)
            assert all(before[j] is BranchHealth.ON_TIME for j in window)
            assert o.transition is Transition.BECAME_DELAYED
            assert o.health is BranchHealth.DELAYED


@settings(max_examples=300)
@given(scenarios())
def test_episodes_match_transitions_and_reference_model(
    scenario: tuple[OverrunPolicy, list[Sample]],
) -> None:
    policy, samples = scenario
    before, obs, tracker = feed(policy, samples)
    became_delayed = [
        i
        for i in range(len(obs))
        if before[i] is BranchHealth.ON_TIME and obs[i].health is BranchHealth.DELAYED
    ]
    increments = [i for i, o in enumerate(obs) if o.overrun_increment == 1]
    assert increments == became_delayed
    assert [i for i, o in enumerate(obs) if o.transition is Transition.BECAME_DELAYED] == (
        became_delayed
    )
    assert tracker.episodes == len(became_delayed) == sum(o.overrun_increment for o in obs)

    expected_episodes, expected_health = reference_episodes(
        [classify(policy, s) for s in samples], policy.flip_after
    )
    assert tracker.episodes == expected_episodes
    assert tracker.health is expected_health


@settings(max_examples=300)
@given(scenarios())
def test_recovery_needs_exactly_k_consecutive_under_samples(
    scenario: tuple[OverrunPolicy, list[Sample]],
) -> None:
    policy, samples = scenario
    k = policy.flip_after
    before, obs, _ = feed(policy, samples)
    kinds = [classify(policy, s) for s in samples]
    # Independent streak count: under samples in a row while delayed.
    streak = 0
    for i, o in enumerate(obs):
        recovered = before[i] is BranchHealth.DELAYED and o.health is BranchHealth.ON_TIME
        assert recovered == (o.transition is Transition.RECOVERED)
        if before[i] is BranchHealth.DELAYED and kinds[i] == UNDER:
            streak += 1
        else:
            streak = 0
        # Recovers on exactly the K-th under sample, never before, never later.
        assert recovered == (streak == k)
        if recovered:
            assert o.overrun_increment == 0
            streak = 0


@settings(max_examples=300)
@given(scenarios())
def test_deadband_sample_never_changes_health(
    scenario: tuple[OverrunPolicy, list[Sample]],
) -> None:
    policy, samples = scenario
    before, obs, _ = feed(policy, samples)
    for s, h, o in zip(samples, before, obs, strict=True):
        if classify(policy, s) == DEAD:
            assert o.health is h
            assert o.transition is None
            assert o.overrun_increment == 0


@settings(max_examples=300)
@given(scenarios())
def test_streaks_and_min_rest_follow_state(
    scenario: tuple[OverrunPolicy, list[Sample]],
) -> None:
    policy, samples = scenario
    tracker = OverrunTracker(policy)
    for s in samples:
        o = tracker.observe(s.duration, s.lateness)
        assert o.health is tracker.health
        assert o.min_rest >= 0.0
        assert 0 <= tracker.over_streak < policy.flip_after
        assert 0 <= tracker.under_streak < policy.flip_after
        if o.health is BranchHealth.ON_TIME:
            assert o.min_rest == 0.0
            assert tracker.under_streak == 0
        else:
            assert tracker.over_streak == 0


@settings(max_examples=300)
@given(scenarios())
def test_delayed_runs_respect_duty_cycle_cap(
    scenario: tuple[OverrunPolicy, list[Sample]],
) -> None:
    policy, samples = scenario
    # Force the branch into DELAYED first so the generated samples are fed while delayed.
    force = Sample(duration=policy.delayed_ratio * policy.interval * 2, lateness=0.0)
    _, obs, _ = feed(policy, [force] * policy.flip_after + samples)
    busy = rest = 0.0
    for o, s in zip(obs, [force] * policy.flip_after + samples, strict=True):
        if o.health is BranchHealth.DELAYED:
            busy += s.duration
            rest += o.min_rest
            # Subnormal durations (< 1e-300 s) lose the precision a ratio needs; no real
            # branch run is that short, so the per-run ratio is checked above that.
            if s.duration > 1e-300:
                assert s.duration / (s.duration + o.min_rest) <= policy.duty_cycle_cap + 1e-9
    assert busy > 0
    assert busy / (busy + rest) <= policy.duty_cycle_cap + 1e-9


BAD_POLICIES: list[tuple[dict[str, Any], str]] = [
    ({"interval": 0.0}, "interval"),
    ({"interval": -1.0}, "interval"),
    ({"interval": math.nan}, "interval"),
    ({"interval": math.inf}, "interval"),
    ({"interval": 1.0, "on_time_ratio": 0.0}, "on_time_ratio"),
    ({"interval": 1.0, "on_time_ratio": -0.5}, "on_time_ratio"),
    ({"interval": 1.0, "on_time_ratio": math.nan}, "on_time_ratio"),
    ({"interval": 1.0, "on_time_ratio": 1.5, "delayed_ratio": 1.5}, "delayed_ratio"),
    ({"interval": 1.0, "on_time_ratio": 2.0, "delayed_ratio": 1.5}, "delayed_ratio"),
    ({"interval": 1.0, "delayed_ratio": math.nan}, "delayed_ratio"),
    ({"interval": 1.0, "flip_after": 0}, "flip_after"),
    ({"interval": 1.0, "flip_after": -3}, "flip_after"),
    ({"interval": 1.0, "duty_cycle_cap": 0.0}, "duty_cycle_cap"),
    ({"interval": 1.0, "duty_cycle_cap": 1.01}, "duty_cycle_cap"),
    ({"interval": 1.0, "duty_cycle_cap": math.nan}, "duty_cycle_cap"),
]


@pytest.mark.parametrize(("kwargs", "field"), BAD_POLICIES)
def test_policy_rejects_bad_values(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        OverrunPolicy(**kwargs)


@given(
    st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.just(math.inf)),
    st.sampled_from(["interval", "duty_cycle_cap"]),
)
def test_policy_rejects_generated_bad_values(value: float, field: str) -> None:
    kwargs: dict[str, Any] = {"interval": 1.0, field: value}
    with pytest.raises(ValueError, match=field):
        OverrunPolicy(**kwargs)


@given(
    st.floats(min_value=0.0, max_value=10.0),
    st.integers(min_value=-10, max_value=0),
)
def test_policy_rejects_bad_ratio_order_and_flip_after(on_time: float, k: int) -> None:
    with pytest.raises(ValueError, match=r"delayed_ratio|on_time_ratio"):
        OverrunPolicy(interval=1.0, on_time_ratio=on_time, delayed_ratio=on_time)
    with pytest.raises(ValueError, match="flip_after"):
        OverrunPolicy(interval=1.0, flip_after=k)


@pytest.mark.parametrize(
    ("duration", "lateness", "name"),
    [
        (-0.1, 0.0, "duration"),
        (0.0, -0.1, "lateness"),
        (math.nan, 0.0, "duration"),
        (0.0, math.nan, "lateness"),
        (math.inf, 0.0, "duration"),
    ],
)
def test_observe_rejects_bad_samples_without_changing_state(
    duration: float, lateness: float, name: str
) -> None:
    tracker = OverrunTracker(OverrunPolicy(interval=10.0))
    tracker.observe(20.0, 0.0)  # one over sample in the streak
    with pytest.raises(ValueError, match=name):
        tracker.observe(duration, lateness)
    assert tracker.over_streak == 1
    assert tracker.health is BranchHealth.ON_TIME


# --- worked examples (interval 10 s, defaults: under <= 7 s, over >= 15 s, K = 3) ---------

OV = (20.0, 0.0)  # ratio 2.0
UN = (5.0, 0.0)  # ratio 0.5
DB = (10.0, 0.0)  # ratio 1.0


def run(*samples: tuple[float, float]) -> tuple[OverrunTracker, list[Observation]]:
    tracker = OverrunTracker(OverrunPolicy(interval=10.0))
    return tracker, [tracker.observe(d, late) for d, late in samples]


def test_defaults() -> None:
    p = OverrunPolicy(interval=10.0)
    assert (p.on_time_ratio, p.delayed_ratio, p.flip_after, p.duty_cycle_cap) == (
        0.7,
        1.5,
        3,
        0.5,
    )


def test_three_overs_make_one_increment_on_the_third() -> None:
    tracker, obs = run(OV, OV, OV)
    assert [o.overrun_increment for o in obs] == [0, 0, 1]
    assert [o.transition for o in obs] == [None, None, Transition.BECAME_DELAYED]
    assert tracker.health is BranchHealth.DELAYED
    assert tracker.episodes == 1
    assert obs[2].min_rest == pytest.approx(20.0)  # duration * (1/0.5 - 1)
    assert obs[0].min_rest == 0.0


def test_deadband_breaks_the_over_streak() -> None:
    tracker, obs = run(OV, OV, DB, OV)
    assert sum(o.overrun_increment for o in obs) == 0
    assert tracker.health is BranchHealth.ON_TIME
    assert tracker.over_streak == 1


def test_lateness_alone_counts() -> None:
    # Short bodies that start 16 s late: starved by the lane, not slow.
    tracker, obs = run((1.0, 16.0), (1.0, 16.0), (1.0, 16.0))
    assert obs[-1].ratio == pytest.approx(1.7)
    assert tracker.health is BranchHealth.DELAYED
    assert obs[-1].min_rest == pytest.approx(1.0)


def test_sustained_overrun_is_one_episode() -> None:
    tracker, obs = run(*[OV] * 10)
    assert tracker.episodes == 1
    assert sum(o.overrun_increment for o in obs) == 1


def test_recovery_and_second_episode() -> None:
    tracker, obs = run(OV, OV, OV, UN, UN, DB, UN, UN, UN, OV, OV, OV)
    transitions = [(i, o.transition) for i, o in enumerate(obs) if o.transition]
    assert transitions == [
        (2, Transition.BECAME_DELAYED),
        (8, Transition.RECOVERED),
        (11, Transition.BECAME_DELAYED),
    ]
    assert tracker.episodes == 2
    assert obs[8].min_rest == 0.0
    assert obs[7].min_rest == pytest.approx(5.0)


def test_boundaries_are_inclusive() -> None:
    tracker, obs = run((15.0, 0.0), (0.0, 15.0), (7.5, 7.5))
    assert tracker.health is BranchHealth.DELAYED  # ratio exactly 1.5 is over
    tracker, obs = run(OV, OV, OV, (7.0, 0.0), (0.0, 7.0), (3.5, 3.5))
    assert obs[-1].transition is Transition.RECOVERED  # ratio exactly 0.7 is under


def test_flip_after_one_flips_on_every_qualifying_sample() -> None:
    tracker = OverrunTracker(OverrunPolicy(interval=1.0, flip_after=1, duty_cycle_cap=1.0))
    a = tracker.observe(2.0, 0.0)
    b = tracker.observe(0.1, 0.0)
    c = tracker.observe(2.0, 0.0)
    assert [a.transition, b.transition, c.transition] == [
        Transition.BECAME_DELAYED,
        Transition.RECOVERED,
        Transition.BECAME_DELAYED,
    ]
    assert a.min_rest == 0.0  # cap 1.0: no cooldown
    assert tracker.episodes == 2
