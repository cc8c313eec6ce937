"""Property tests of ``awa.Backoff`` (issue 3 acceptance: "and of backoff")."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from awa import Backoff

backoffs = st.builds(
    lambda base, factor, extra, jitter: Backoff(base, factor, base + extra, jitter),
    base=st.floats(0.001, 100.0),
    factor=st.floats(1.0, 10.0),
    extra=st.floats(0.0, 10_000.0),
    jitter=st.floats(0.0, 0.99),
)
attempts = st.integers(1, 5000)
seeds = st.integers(0, 2**32 - 1)

FAST = settings(max_examples=300, deadline=None)


@FAST
@given(backoffs, attempts, seeds)
def test_delay_is_within_jittered_bounds_and_never_above_the_cap(
    b: Backoff, attempt: int, seed: int
) -> None:
    delay = b.delay(attempt, random.Random(seed))
    nominal = min(b.cap, b.base * b.factor ** min(attempt - 1, 60)) if b.factor > 1 else b.base
    assert delay <= b.cap
    assert delay >= b.base * (1 - b.jitter) - 1e-9
    assert delay >= min(b.cap, nominal) * (1 - b.jitter) - 1e-6 * nominal


@FAST
@given(backoffs, attempts, attempts)
def test_without_jitter_delay_never_decreases_with_attempts(
    b: Backoff, first: int, second: int
) -> None:
    flat = Backoff(b.base, b.factor, b.cap, 0.0)
    low, high = sorted((first, second))
    assert flat.delay(low) <= flat.delay(high)


@FAST
@given(backoffs)
def test_first_delay_is_base_and_late_delays_reach_the_cap(b: Backoff) -> None:
    flat = Backoff(b.base, b.factor, b.cap, 0.0)
    assert flat.delay(1) == pytest.approx(min(b.base, b.cap))
    if b.factor >= 1.01:
        assert flat.delay(5000) == pytest.approx(b.cap)


@FAST
@given(backoffs, attempts, seeds)
def test_same_seed_same_delay(b: Backoff, attempt: int, seed: int) -> None:
    assert b.delay(attempt, random.Random(seed)) == b.delay(attempt, random.Random(seed))


def test_jitter_spreads_retries_of_jobs_that_failed_together() -> None:
    b = Backoff(base=10.0, jitter=0.1)
    rng = random.Random(7)
    delays = {round(b.delay(3, rng), 6) for _ in range(200)}
    assert len(delays) > 150  # spread, not one thundering herd
    assert min(delays) >= 36.0 and max(delays) <= 44.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"base": 0.0}, "base"),
        ({"factor": 0.5}, "factor"),
        ({"base": 5.0, "cap": 1.0}, "cap"),
        ({"jitter": 1.0}, "jitter"),
        ({"jitter": -0.1}, "jitter"),
    ],
)
def test_invalid_configuration_is_rejected_naming_the_field(
    kwargs: dict[str, float], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        Backoff(**kwargs)


def test_attempt_must_be_one_based() -> None:
    with pytest.raises(ValueError, match="attempt"):
        Backoff().delay(0)
