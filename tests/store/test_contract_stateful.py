"""The storage contract, checked: PostgreSQL and the reference model run the same random
operation sequences and must agree on every job after every step.

``StoreAgreesWithModel`` drives ``Store`` (real SQL on a real PostgreSQL) and
``reference_model.ReferenceStore`` in lockstep through the contract
(``awa.store.contract.JobStoreContract``): inserts, claims by several workers (also two at
once), heartbeats, batched results built by the worker's own ``decide``, duplicate and stale
results, operator cancel/retry, promotion, lease expiry (presence lock gone, heartbeat
stale) and deadline expiry, worker crashes, and clock jumps forwards and backwards. Time is
an explicit ``now`` on every call. After each step every job (live and finished), the
outbox events, the dispatch order of each queue and the next due time must be the same.

Concurrency: ``race`` runs two operations at once on PostgreSQL; the outcome must equal one
of the two serial orders applied to the model (or, when PostgreSQL aborted one to break a
deadlock, the other alone). ``race_claims`` checks what the contract says of concurrent
claims: disjoint, and together a prefix of the dispatch order.

Budget: bounded in CI; ``HYPOTHESIS_PROFILE=long`` (profile in ``conftest.py``) runs many
more and longer sequences (see README, "Reliability").

Below the machine: focused tests for store bugs found while building it, each a
deterministic reproduction (strict xfail while unfixed, the reason naming the fix; all fixed
today: an operator's cancel request wins over a failed last attempt and over a rescue, a
cancel racing a requeue is not refused, and a deadlock between a flush and a rescue surfaces
as the retryable ``DatabaseConflict``).
"""

from __future__ import annotations

import asyncio
import copy
import os
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from awa.backoff import Backoff
from awa.db.connect import connect
from awa.db.queries import sql_text
from awa.errors import DatabaseConflict, InvalidTransition, JobNotFound, ValidationError
from awa.model import InsertParams, Job, JobState
from awa.outcomes import Cancel, RetryAfter, Snooze
from awa.store import CLEAR_PROGRESS, FinishedAttempt, Rescheduled, Store
from awa.store.contract import ContractView, JobStoreContract, list_dispatchable
from awa.store.presence import PRESENCE_LOCK_CLASS
from awa.store.recovery import RescueOutcome
from awa.worker.outcomes import Decision, decide
from support.reference_model import ModelJob, Quirks, ReferenceStore

# ------------------------------------------------------------------------------ budget

LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
CI_EXAMPLES = 150
CI_STEPS = 50


def stateful_settings() -> settings:
    """CI: bounded examples. Long profile: the profile's own (much larger) counts."""
    base = settings(
        settings.default,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    if LONG:
        return base
    return settings(base, max_examples=CI_EXAMPLES, stateful_step_count=CI_STEPS)


# ------------------------------------------------------------------------- vocabulary

START = datetime(2030, 1, 1, tzinfo=UTC)
QUEUES = ("q1", "q2")
KIND_SETS = (("a",), ("b",), ("a", "b"), ("a", "b"))
WORKERS = ("w0", "w1", "w2")
BIG = 10_000  # limits large enough that ties at a page boundary cannot make order matter
BACKOFF = Backoff(base=1.0, factor=2.0, cap=600.0, jitter=0.0)
PROGRESS: tuple[Any, ...] = (None, None, CLEAR_PROGRESS, 1, {"pct": 50})
OUTCOMES = (
    "ok",
    "raise",
    "timeout",
    "snooze",
    "snooze_now",
    "retry_after_now",
    "retry_after_later",
    "cancel",
)
JOB_SPEC = st.fixed_dictionaries(
    {
        "queue": st.sampled_from(QUEUES),
        "kind": st.sampled_from(("a", "b")),
        "priority": st.integers(1, 4),
        "delay": st.sampled_from((None, None, -5.0, 0.0, 1.0, 30.0, 3600.0)),
        "max_attempts": st.integers(1, 3),
        "timeout": st.sampled_from((None, 1.0, 10.0, 60.0)),
    }
)
CLOCK_STEPS = (0.25, 1.0, 2.0, 5.0, 11.0, 31.0, 61.0, 600.0, 3600.0, 2 * 86400.0, -1.0, -30.0)
CANCELLED_WHILE_RUNNING = "cancelled by operator while running"

#: Every job, live and finished, in the columns the contract talks about.
OBSERVE_SQL = """
SELECT id, state::text AS state, kind, queue, priority, original_priority, attempt,
       max_attempts, run_at, created_at, attempted_at, NULL::timestamptz AS finalized_at,
       heartbeat_at, deadline_at, errors, progress, NULL::jsonb AS result, run_lease,
       claimed_by, cancel_requested, cancel_reason
  FROM awa.jobs
UNION ALL
SELECT id, state::text, kind, queue, priority, original_priority, attempt, max_attempts,
       run_at, created_at, attempted_at, finalized_at, NULL, NULL, errors, progress, result,
       run_lease, claimed_by, false, NULL
  FROM awa.jobs_done
"""
EVENTS_SQL = "SELECT job_id, kind FROM awa.events WHERE job_id IS NOT NULL"
RESET_SQL = """
DELETE FROM awa.jobs; DELETE FROM awa.jobs_done; DELETE FROM awa.job_unique;
DELETE FROM awa.events; ALTER SEQUENCE awa.job_id_seq RESTART;
"""
LOCK_SQL = "SELECT pg_advisory_lock($1, hashtext($2))"
UNLOCK_SQL = "SELECT pg_advisory_unlock($1, hashtext($2))"


# ------------------------------------------------------------------------ environment


@dataclass
class Env:
    """One event loop, one database, one store for the whole hypothesis run; reset between
    examples (far cheaper than a database per example)."""

    loop: asyncio.AbstractEventLoop
    url: str
    store: Store
    presence: asyncpg.Connection  # holds the presence locks of the "alive" workers

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coro)

    async def reset(self) -> None:
        await self.store.db.pool.execute(RESET_SQL)
        await self.presence.execute("SELECT pg_advisory_unlock_all()")

    async def observe(self) -> tuple[dict[int, dict[str, Any]], Counter[tuple[int, str]]]:
        rows = await self.store.db.pool.fetch(OBSERVE_SQL)
        jobs: dict[int, dict[str, Any]] = {}
        for row in rows:
            assert row["id"] not in jobs, f"job {row['id']} is both live and finished"
            jobs[int(row["id"])] = _store_row(row)
        events = await self.store.db.pool.fetch(EVENTS_SQL)
        return jobs, Counter((int(r["job_id"]), str(r["kind"])) for r in events)


def _with_database(url: str, name: str) -> str:
    return urlsplit(url)._replace(path=f"/{name}").geturl()


@pytest.fixture
def env(server_url: str, template_name: str) -> Iterator[Env]:
    """A database from the session's template, driven from a loop of this test's own (the
    hypothesis machine is synchronous)."""
    name = f"awa_sm_{uuid.uuid4().hex[:12]}"
    loop = asyncio.new_event_loop()

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def open_env() -> Env:
        await admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
        url = _with_database(server_url, name)
        store = await Store.open(url, min_size=2, max_size=4)
        return Env(loop, url, store, await connect(url))

    environment = loop.run_until_complete(open_env())
    try:
        yield environment
    finally:
        loop.run_until_complete(environment.presence.close())
        loop.run_until_complete(environment.store.close())
        loop.run_until_complete(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        loop.close()


# ------------------------------------------------------------------------- comparison

_COMPARED = (
    "state",
    "kind",
    "queue",
    "priority",
    "original_priority",
    "attempt",
    "max_attempts",
    "created_at",
    "attempted_at",
    "finalized_at",
    "heartbeat_at",
    "deadline_at",
    "errors",
    "progress",
    "result",
    "run_lease",
    "claimed_by",
    "cancel_requested",
    "cancel_reason",
)


def _errors(records: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What an error record says (its ``at`` text format is the producer's business)."""
    return [
        (r.get("kind"), r.get("attempt"), r.get("message"), r.get("claimed_by")) for r in records
    ]


def _store_row(row: asyncpg.Record) -> dict[str, Any]:
    out = {name: row[name] for name in _COMPARED if name not in ("errors", "cancel_reason")}
    out["errors"] = _errors(row["errors"])
    out["cancel_reason"] = row["cancel_reason"] if row["cancel_requested"] else None
    out["run_at"] = row["run_at"]
    return out


def _model_row(job: ModelJob) -> dict[str, Any]:
    out = {name: getattr(job, name) for name in _COMPARED if name not in ("errors", "state")}
    out["state"] = job.state.value
    out["errors"] = _errors(job.errors)
    out["cancel_reason"] = job.cancel_reason if job.cancel_requested else None
    return out


def state_diff(
    model: ReferenceStore,
    observed: dict[int, dict[str, Any]],
    events: Counter[tuple[int, str]],
    *,
    settle: bool,
) -> list[str]:
    """Where the model and the observed database differ (empty: they agree). With
    ``settle``, a jittered ``run_at`` inside its window is pinned in the model."""
    problems: list[str] = []
    if set(model.jobs) != set(observed):
        problems.append(f"job ids: model {sorted(model.jobs)} store {sorted(observed)}")
    for job_id in sorted(set(model.jobs) & set(observed)):
        job, seen = model.jobs[job_id], observed[job_id]
        expected = _model_row(job)
        for name in _COMPARED:
            if expected[name] != seen[name]:
                problems.append(
                    f"job {job_id} {name}: model {expected[name]!r} store {seen[name]!r}"
                )
        if job.run_at_window is not None:
            lo, hi = job.run_at_window
            if not lo - timedelta(microseconds=1) <= seen["run_at"] <= hi:
                problems.append(f"job {job_id} run_at {seen['run_at']} outside [{lo}, {hi}]")
            elif settle:
                model.settle_run_at(job_id, seen["run_at"])
        elif job.run_at != seen["run_at"]:
            problems.append(f"job {job_id} run_at: model {job.run_at} store {seen['run_at']}")
    if Counter(model.events) != events:
        problems.append(f"events: model {sorted(model.events)} store {sorted(events.elements())}")
    return problems


def normal(value: Any) -> Any:
    """A return value in a form both implementations can be compared in (ids, states,
    counts; order only where the contract fixes it)."""
    if isinstance(value, Job):
        return (value.id, value.state.value, value.attempt, value.run_lease)
    if isinstance(value, RescueOutcome):
        return (value.retried, value.failed, value.cancelled, sorted(value.queues))
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, dict):
        return sorted(value.items())
    if isinstance(value, tuple):
        return tuple(normal(v) for v in value)
    if isinstance(value, list):
        return sorted(normal(v) for v in value)  # claims, promotions: order is not contract
    return value


#: A call through the contract, made the same way on the store and on the model.
Call = Callable[[JobStoreContract], Awaitable[Any]]
CONFLICT = ("conflict",)


async def capture(call: Call, target: JobStoreContract) -> tuple[Any, Any]:
    """(comparable outcome, raw result). Typed refusals are outcomes too; a deadlock abort
    (PostgreSQL only) is ``CONFLICT``: nothing was written."""
    try:
        result = await call(target)
    except (InvalidTransition, JobNotFound, ValidationError) as exc:
        return ("error", type(exc).__name__), None
    except DatabaseConflict:
        return CONFLICT, None
    return ("ok", normal(result)), result


@dataclass
class Op:
    """One contract call, plus the harness's bookkeeping once the store's result is known."""

    label: str
    call: Call
    after: Callable[[Any], None] = lambda _result: None
    #: The jobs a store claim returned, whose drawn leases the model adopts (ADR 040).
    claimed: Callable[[Any], list[Job]] = lambda _result: []


# ---------------------------------------------------------------------------- workers


@dataclass
class Attempt:
    job: Job  # as the claim returned it
    cancel_reason: str | None = None
    cancel_seen: bool = False

    @property
    def key(self) -> tuple[int, int]:
        return (self.job.id, self.job.run_lease)


@dataclass
class Worker:
    """A runtime as the store sees it: an instance id, a presence lock (or not), and the
    attempts it believes it runs. A crashed worker may keep its attempts: a partitioned or
    paused process that later sends results nobody wants any more."""

    name: str
    generation: int = 1
    alive: bool = False
    held: list[Attempt] = field(default_factory=list)

    @property
    def instance_id(self) -> str:
        return f"{self.name}.{self.generation}"


def _decision(attempt: Attempt, outcome: str, now: datetime) -> Decision:
    """What the worker records for one finished attempt: the dispatcher's rule for an
    operator's cancel, else ``awa.worker.outcomes.decide`` itself."""
    job = attempt.job
    if attempt.cancel_seen:
        error = {
            "at": now.isoformat(),
            "attempt": job.attempt,
            "kind": "cancelled",
            "message": attempt.cancel_reason or CANCELLED_WHILE_RUNNING,
        }
        return Decision(JobState.CANCELLED, "cancelled", error=error)
    signals: dict[str, dict[str, Any]] = {
        "ok": {"returned": {"job": job.id, "attempt": job.attempt}},
        "raise": {"raised": RuntimeError("boom")},
        "timeout": {"timed_out": True, "timeout": job.timeout or 1.0},
        "snooze": {"raised": Snooze(5)},
        "snooze_now": {"returned": Snooze(0)},
        "retry_after_now": {"raised": RetryAfter(0, "try again")},
        "retry_after_later": {"returned": RetryAfter(30, "later")},
        "cancel": {"raised": Cancel("handler gave up")},
    }
    return decide(job, now, BACKOFF, **signals[outcome])


def _insert_call(params: InsertParams, now: datetime) -> Call:
    return lambda s: s.insert(params, now=now)


Items = list[tuple[Attempt, Decision]]
#: A result write, built at flush time (a resend flushes again later, with a later ``now``).
MakeCall = Callable[[datetime], Call]


def _result_groups(items: Items, progress: Any) -> list[tuple[Items, MakeCall]]:
    """The completion buffer's flush: one statement per result class, in its order."""
    completed = [(a, d) for a, d in items if d.state is JobState.COMPLETED]
    finished = [(a, d) for a, d in items if d.state in (JobState.FAILED, JobState.CANCELLED)]
    requeued = [(a, d) for a, d in items if d.state in (JobState.RETRYABLE, JobState.SCHEDULED)]
    groups: list[tuple[Items, MakeCall]] = []
    if completed:
        groups.append((completed, _complete_call(completed, progress)))
    if finished:
        groups.append((finished, _finalize_call(finished, progress)))
    if requeued:
        groups.append((requeued, _reschedule_call(requeued, progress)))
    return groups


def _complete_call(items: Items, progress: Any) -> MakeCall:
    def make(now: datetime) -> Call:
        return lambda s: s.complete(
            [a.job.id for a, _ in items],
            [a.job.run_lease for a, _ in items],
            [d.result for _, d in items],
            now,
            progress=[progress] * len(items),
        )

    return make


def _finalize_call(items: Items, progress: Any) -> MakeCall:
    def make(now: datetime) -> Call:
        batch = [
            FinishedAttempt(a.job.id, a.job.run_lease, d.state, d.error, progress) for a, d in items
        ]
        return lambda s: s.finalize(batch, now)

    return make


def _reschedule_call(items: Items, progress: Any) -> MakeCall:
    def make(now: datetime) -> Call:
        batch = []
        for a, d in items:
            assert d.run_at is not None
            batch.append(
                Rescheduled(
                    a.job.id,
                    a.job.run_lease,
                    d.state,
                    d.run_at,
                    d.error,
                    d.give_back_attempt,
                    progress,
                )
            )
        return lambda s: s.reschedule(batch, now)

    return make


# ---------------------------------------------------------------------------- machine

#: Current store behaviour the contract says is wrong (see reference_model.Quirks and the
#: strict-xfail tests at the end of this file): none today.
STORE_QUIRKS = Quirks()

RESCUE_LEASE = "holder runtime is gone (presence lock released)"
RESCUE_STALE = "heartbeat is stale"
RESCUE_DEADLINE = "deadline exceeded and the holder did not stop the attempt"


class StoreAgreesWithModel(RuleBasedStateMachine):
    def __init__(self, env: Env) -> None:
        super().__init__()
        self.env = env
        self.model = ReferenceStore(STORE_QUIRKS)
        self.now = START
        self.workers = {name: Worker(name) for name in WORKERS}
        self.sent: list[tuple[str, MakeCall]] = []
        env.run(env.reset())
        for worker in self.workers.values():
            self._start(worker)

    # -- plumbing

    @property
    def store(self) -> Store:
        return self.env.store

    @property
    def contract(self) -> ContractView:
        """The store under the contract's operation names (the model's)."""
        return ContractView(self.env.store)

    def both(self, op: Op) -> Any:
        """Run ``op`` on the store, then on the model; the outcomes must be equal."""
        got, raw = self.env.run(capture(op.call, self.contract))
        self.model.draw_leases(op.claimed(raw) if raw is not None else [])
        expected, _ = self.env.run(capture(op.call, self.model))
        assert got == expected, f"{op.label}: store {got!r} != model {expected!r}"
        op.after(raw)
        return raw

    def race(self, first: Op, second: Op) -> None:
        """Run two ops concurrently on PostgreSQL; the result must be a serial order."""

        async def together() -> list[tuple[Any, Any]]:
            return list(
                await asyncio.gather(
                    capture(first.call, self.contract), capture(second.call, self.contract)
                )
            )

        (got_a, raw_a), (got_b, raw_b) = self.env.run(together())
        observed, events = self.env.run(self.env.observe())
        ran = [(op, got) for op, got in ((first, got_a), (second, got_b)) if got != CONFLICT]
        drawn = [
            job
            for op, raw in ((first, raw_a), (second, raw_b))
            if raw is not None
            for job in op.claimed(raw)
        ]
        orders = [ran, ran[::-1]] if len(ran) == 2 else [ran]
        tried: list[str] = []
        for order in orders:
            candidate = copy.deepcopy(self.model)
            candidate.draw_leases(drawn)
            outcomes = [self.env.run(capture(op.call, candidate))[0] for op, _ in order]
            wanted = [got for _, got in order]
            problems = state_diff(candidate, observed, events, settle=False)
            if outcomes == wanted and not problems:
                state_diff(candidate, observed, events, settle=True)
                self.model = candidate
                break
            labels = " then ".join(op.label for op, _ in order)
            tried.append(f"{labels}: model {outcomes} store {wanted}; {problems[:5]}")
        else:
            raise AssertionError("race matches no serial order:\n" + "\n".join(tried))
        if got_a != CONFLICT:
            first.after(raw_a)
        if got_b != CONFLICT:
            second.after(raw_b)

    def _busy(self) -> list[Worker]:
        """Workers holding attempts (current or stale)."""
        return [w for w in self.workers.values() if w.held]

    def _start(self, worker: Worker) -> None:
        self.env.run(self.env.presence.execute(LOCK_SQL, PRESENCE_LOCK_CLASS, worker.instance_id))
        worker.alive = True
        self.model.present.add(worker.instance_id)

    def _job_id(self, index: int) -> int:
        ids = sorted(self.model.jobs)
        return ids[index % len(ids)] if index >= 0 and ids else 999_999

    def _claim_op(self, worker: Worker, queue: str, kinds: Sequence[str], limit: int) -> Op:
        now, instance = self.now, worker.instance_id

        def after(jobs: list[Job]) -> None:
            worker.held.extend(Attempt(job) for job in jobs)

        return Op(
            f"claim({worker.name}, {queue}, {list(kinds)}, {limit})",
            lambda s: s.claim(queue, kinds, limit, instance, now),
            after,
            claimed=list,
        )

    def _heartbeat_op(self, worker: Worker, progress: Any) -> Op:
        now = self.now
        held = list(worker.held)

        def after(result: tuple[set[int], dict[int, str | None]]) -> None:
            lost, cancel = result
            # as the heartbeat loop does: stop lost attempts, flag cancel-requested ones
            beaten = {id(a) for a in held}
            worker.held = [a for a in worker.held if id(a) not in beaten or a.job.id not in lost]
            for attempt in held:
                if attempt.job.id in cancel:
                    attempt.cancel_seen = True
                    attempt.cancel_reason = cancel[attempt.job.id]

        return Op(
            f"heartbeat({worker.name})",
            lambda s: s.heartbeat(
                [a.job.id for a in held],
                [a.job.run_lease for a in held],
                [progress] * len(held),
                now,
            ),
            after,
        )

    def _finish_items(self, worker: Worker, picks: Sequence[int], outcomes: Sequence[str]) -> Items:
        chosen: dict[tuple[int, int], Attempt] = {}
        for pick in picks:
            attempt = worker.held[pick % len(worker.held)]
            chosen.setdefault(attempt.key, attempt)
        return [
            (attempt, _decision(attempt, outcome, self.now))
            for attempt, outcome in zip(chosen.values(), outcomes, strict=False)
        ]

    def _forget(self, worker: Worker, items: Items) -> None:
        done = {a.key for a, _ in items}
        worker.held = [a for a in worker.held if a.key not in done]

    # -- producers and operators

    @initialize(specs=st.lists(JOB_SPEC, min_size=1, max_size=8))
    def seed(self, specs: list[dict[str, Any]]) -> None:
        """Every sequence starts with some work, so claims have something to take.

        No rule has a precondition: racing steps make the machine's state nondeterministic,
        and hypothesis requires the choice of rules not to depend on it (rules that find
        nothing to do do nothing)."""
        self.insert(specs)

    @rule(specs=st.lists(JOB_SPEC, min_size=1, max_size=3))
    def insert(self, specs: list[dict[str, Any]]) -> None:
        for spec in specs:
            options = dict(spec)
            delay = options.pop("delay")
            run_at = None if delay is None else self.now + timedelta(seconds=delay)
            params = InsertParams(options.pop("kind"), {"n": 1}, run_at=run_at, **options)
            self.both(Op(f"insert({params})", _insert_call(params, self.now)))

    @rule(index=st.integers(-1, 40), reason=st.sampled_from(("stop", "not needed")))
    def cancel(self, index: int, reason: str) -> None:
        job_id, now = self._job_id(index), self.now
        self.both(Op(f"cancel_job({job_id})", lambda s: s.cancel_job(job_id, reason, now)))

    @rule(index=st.integers(-1, 40))
    def retry(self, index: int) -> None:
        job_id, now = self._job_id(index), self.now
        self.both(Op(f"retry_job({job_id})", lambda s: s.retry_job(job_id, now)))

    # -- workers

    @rule(
        name=st.sampled_from(WORKERS),
        queue=st.sampled_from(QUEUES),
        kinds=st.sampled_from(KIND_SETS),
        limit=st.integers(1, 3),
    )
    def claim(self, name: str, queue: str, kinds: tuple[str, ...], limit: int) -> None:
        self.both(self._claim_op(self.workers[name], queue, kinds, limit))

    @rule(
        pair=st.lists(st.sampled_from(WORKERS), min_size=2, max_size=2, unique=True),
        queue=st.sampled_from(QUEUES),
        kinds=st.sampled_from(KIND_SETS),
        limits=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    )
    def race_claims(
        self, pair: list[str], queue: str, kinds: tuple[str, ...], limits: tuple[int, int]
    ) -> None:
        """Two workers claim the same queue at once: disjoint, and a prefix of dispatch order.

        With equal limits neither claimer can hold more than half of the other's head
        (``2 × limit`` candidates), so the union is a prefix of dispatch order. A claimer
        with the larger limit can leave the other fewer candidates than it wants; that one
        then fills kind by kind (ADR 035), so the union is a prefix of each kind's order,
        holds the first ``max(limits)`` jobs, and is as large as the free jobs allow, but
        is not necessarily a global prefix."""
        a, b = (self.workers[n] for n in pair)
        order = self.env.run(list_dispatchable(self.model, queue, kinds))
        expected = [j.id for j in order[: sum(limits)]]
        kind_of = {j.id: j.kind for j in order}

        async def together() -> tuple[list[Job], list[Job]]:
            first, second = await asyncio.gather(
                self.store.jobs.claim_batch(queue, kinds, limits[0], a.instance_id, self.now),
                self.store.jobs.claim_batch(queue, kinds, limits[1], b.instance_id, self.now),
            )
            return first, second

        got_a, got_b = self.env.run(together())
        ids_a, ids_b = [j.id for j in got_a], [j.id for j in got_b]
        assert len(ids_a) <= limits[0] and len(ids_b) <= limits[1]
        assert not set(ids_a) & set(ids_b), f"both claimed {set(ids_a) & set(ids_b)}"
        taken = ids_a + ids_b
        if limits[0] == limits[1]:
            assert sorted(taken) == sorted(expected), (
                f"racing claims took {ids_a} + {ids_b}, dispatch order prefix is {expected}"
            )
        else:
            assert len(taken) == len(expected), f"racing claims took {ids_a} + {ids_b}"
            # The larger claimer's head (2 x its limit) always has room for its batch past
            # what the other holds, and it walks that head in order: every job before its
            # last is taken by one of the two, so the first max(limits) jobs are.
            first = expected[: max(limits)]
            assert set(first) <= set(taken), (
                f"racing claims took {ids_a} + {ids_b}, dispatch order prefix is {expected}"
            )
            for kind in {kind_of.get(job_id) for job_id in taken}:
                of_kind = [j.id for j in order if j.kind == kind]
                mine = sorted(i for i in taken if kind_of.get(i) == kind)
                assert sorted(of_kind[: len(mine)]) == mine, (
                    f"racing claims took {mine} of {kind}, its dispatch order is {of_kind}"
                )
        self.model.draw_leases(got_a + got_b)
        self.model.claim_exact(ids_a, a.instance_id, self.now)
        self.model.claim_exact(ids_b, b.instance_id, self.now)
        a.held.extend(Attempt(j) for j in got_a)
        b.held.extend(Attempt(j) for j in got_b)

    @rule()
    def race_promotions(self) -> None:
        """Two promotions at once (a tick beside a leader) split the due jobs between them:
        each due job promoted exactly once."""
        now = self.now

        async def together() -> list[list[str]]:
            return list(
                await asyncio.gather(
                    self.store.maintenance.promote_due(BIG, now),
                    self.store.maintenance.promote_due(BIG, now),
                )
            )

        first, second = self.env.run(together())
        expected = self.env.run(self.model.promote_due(BIG, now))
        assert Counter(first) + Counter(second) == Counter(expected), (
            f"racing promotions moved {first} + {second}, due were {expected}"
        )

    @rule(index=st.integers(0, 5), progress=st.sampled_from(PROGRESS))
    def heartbeat(self, index: int, progress: Any) -> None:
        busy = self._busy()
        if busy:
            self.both(self._heartbeat_op(busy[index % len(busy)], progress))

    @rule(
        index=st.integers(0, 5),
        picks=st.lists(st.integers(0, 20), min_size=1, max_size=3),
        outcomes=st.lists(st.sampled_from(OUTCOMES), min_size=3, max_size=3),
        progress=st.sampled_from(PROGRESS),
    )
    def finish(self, index: int, picks: list[int], outcomes: list[str], progress: Any) -> None:
        """A worker flushes results for some of its attempts (current or stale)."""
        busy = self._busy()
        if not busy:
            return
        worker = busy[index % len(busy)]
        items = self._finish_items(worker, picks, outcomes)
        for _group, make in _result_groups(items, progress):
            self.sent.append((f"resend by {worker.name}", make))
            self.both(Op(f"results of {worker.name}", make(self.now)))
        self._forget(worker, items)

    @rule(index=st.integers(0, 50))
    def resend(self, index: int) -> None:
        """A flush sent again (its first answer was lost): a duplicate result."""
        if not self.sent:
            return
        label, make = self.sent[index % len(self.sent)]
        self.both(Op(label, make(self.now)))

    @rule(name=st.sampled_from(WORKERS), keep_attempts=st.booleans())
    def crash(self, name: str, keep_attempts: bool) -> None:
        """The presence lock goes; with ``keep_attempts`` the process lives on unaware."""
        worker = self.workers[name]
        if worker.alive:
            self.env.run(
                self.env.presence.execute(UNLOCK_SQL, PRESENCE_LOCK_CLASS, worker.instance_id)
            )
            self.model.present.discard(worker.instance_id)
            worker.alive = False
        if not keep_attempts:
            worker.held.clear()

    @rule(name=st.sampled_from(WORKERS))
    def restart(self, name: str) -> None:
        worker = self.workers[name]
        if not worker.alive:
            worker.generation += 1
            self._start(worker)

    # -- maintenance

    @rule()
    def promote(self) -> None:
        now = self.now
        self.both(Op("promote_due", lambda s: s.promote_due(BIG, now)))

    @rule(grace=st.sampled_from((0.5, 5.0)), staleness=st.sampled_from((1.0, 10.0, 30.0)))
    def expire_leases(self, grace: float, staleness: float) -> None:
        """rescue_stale_heartbeats: find expired leases, requeue them at once."""
        now = self.now
        found = self.both(
            Op(
                "find_rescuable_running",
                lambda s: s.find_rescuable_running(grace, staleness, BIG, now),
            )
        )
        for pairs, reason in zip(found, (RESCUE_LEASE, RESCUE_STALE), strict=True):
            self.both(self._rescue_op(pairs, reason, 0.0))

    @rule(grace=st.sampled_from((0.0, 5.0)))
    def expire_deadlines(self, grace: float) -> None:
        """rescue_expired_deadlines: timed-out attempts retried with backoff (jittered)."""
        now = self.now
        found = self.both(
            Op("find_expired_deadlines", lambda s: s.find_expired_deadlines(grace, BIG, now))
        )
        self.both(self._rescue_op(found, RESCUE_DEADLINE, 1.0))

    def _rescue_op(self, pairs: list[tuple[int, int]], reason: str, base: float) -> Op:
        now = self.now
        return Op(
            f"rescue({pairs}, {reason!r})",
            lambda s: s.rescue(
                pairs, from_states=["running"], reason=reason, retry_base_delay=base, now=now
            ),
        )

    # -- time and concurrency

    @rule(seconds=st.sampled_from(CLOCK_STEPS))
    def advance(self, seconds: float) -> None:
        """Clock jumps, backwards too (a stepped NTP clock, a leader on another host)."""
        self.now += timedelta(seconds=seconds)

    @rule(
        kinds=st.lists(
            st.sampled_from(("claim", "heartbeat", "finish", "rescue", "promote")),
            min_size=2,
            max_size=2,
            unique=True,  # same-kind skip-locked pairs split work: race_claims/_promotions
        ),
        workers=st.lists(st.integers(0, 5), min_size=2, max_size=2),
        picks=st.lists(st.integers(0, 20), min_size=1, max_size=3),
        outcomes=st.lists(st.sampled_from(OUTCOMES), min_size=3, max_size=3),
        queue=st.sampled_from(QUEUES),
    )
    def race_two(
        self,
        kinds: list[str],
        workers: list[int],
        picks: list[int],
        outcomes: list[str],
        queue: str,
    ) -> None:
        """Two writers at once, e.g. a rescue of attempts a worker is completing."""
        ops = [
            self._race_op(kind, index, picks, outcomes, queue)
            for kind, index in zip(kinds, workers, strict=True)
        ]
        if ops[0] is not None and ops[1] is not None:
            self.race(ops[0], ops[1])

    def _race_op(
        self, kind: str, index: int, picks: list[int], outcomes: list[str], queue: str
    ) -> Op | None:
        now = self.now
        if kind == "claim":
            return self._claim_op(self.workers[WORKERS[index % len(WORKERS)]], queue, ("a", "b"), 2)
        if kind == "promote":
            return Op("promote_due", lambda s: s.promote_due(BIG, now))
        if kind == "rescue":
            # every attempt not beaten at this very instant: the widest window for a collision
            orphaned, stale = self.env.run(
                self.store.recovery.find_rescuable_running(0.5, 0.0, BIG, now)
            )
            return self._rescue_op(orphaned + stale, RESCUE_LEASE, 0.0)
        busy = self._busy()
        if not busy:
            return None
        worker = busy[index % len(busy)]
        if kind == "heartbeat":
            return self._heartbeat_op(worker, 1)
        # one result class per racing op: a flush of several classes is several statements
        group, make = _result_groups(self._finish_items(worker, picks, outcomes), None)[0]
        self.sent.append((f"resend by {worker.name}", make))
        return Op(f"results of {worker.name}", make(now), lambda _r: self._forget(worker, group))

    # -- the check

    @invariant()
    def agree(self) -> None:
        observed, events = self.env.run(self.env.observe())
        problems = state_diff(self.model, observed, events, settle=True)
        assert not problems, "store and model disagree:\n" + "\n".join(problems)
        for queue in QUEUES:
            got = self.env.run(list_dispatchable(self.contract, queue, ("a", "b")))
            want = self.env.run(list_dispatchable(self.model, queue, ("a", "b")))
            assert [j.id for j in got] == [j.id for j in want], f"dispatch order of {queue}"
        got_due = self.env.run(self.store.maintenance.next_due_at())
        assert got_due == self.env.run(self.model.next_due_at()), "next_due_at"

    def teardown(self) -> None:
        self.env.run(self.env.presence.execute("SELECT pg_advisory_unlock_all()"))


# A passing CI run takes ~20 s; a failing one shrinks for up to hypothesis' 5 minutes, and
# should end with its minimal example rather than with a timeout.
@pytest.mark.timeout(6 * 3600 if LONG else 600)
def test_store_agrees_with_reference_model(env: Env) -> None:
    # Through a plain callable: hypothesis before 6.16x left this function untyped, later
    # releases type its first parameter as a machine class although a factory works too.
    run: Callable[..., None] = run_state_machine_as_test
    run(lambda: StoreAgreesWithModel(env), settings=stateful_settings())


# ------------------------------------------------------------ regressions found above


async def _open(url: str) -> Store:
    return await Store.open(url, min_size=2, max_size=4)


async def _running(store: Store, max_attempts: int, instance: str = "w") -> Job:
    await store.jobs.insert_job(InsertParams("a", max_attempts=max_attempts), now=START)
    [job] = await store.jobs.claim_batch("default", ["a"], 1, instance, START)
    return job


async def _wait_for_lock_wait(store: Store) -> None:
    """Until some session of this database waits for a row lock (bounded)."""
    sql = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(1000):  # PostgreSQL has no event for "a session started waiting": poll
        if await store.db.pool.fetchval(sql):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no session of this database started waiting for a lock")


@pytest.mark.parametrize(
    "max_attempts",
    [3, 1],
)
async def test_cancel_request_wins_over_a_failed_attempt(
    database_url: str, max_attempts: int
) -> None:
    """An operator cancels a running job; its attempt then fails before any heartbeat saw
    the request. Whether or not attempts remain, the job ends cancelled with the operator's
    reason (today: only when attempts remain; the last attempt ends failed)."""
    store = await _open(database_url)
    try:
        job = await _running(store, max_attempts)
        assert (await store.admin.cancel_job(job.id, "operator says stop", START)).state is (
            JobState.RUNNING
        )
        error = {"kind": "exception", "attempt": 1, "message": "boom"}
        decision = decide(job, START, BACKOFF, raised=RuntimeError("boom"))
        if decision.state is JobState.FAILED:
            applied = await store.jobs.finalize_batch(
                [FinishedAttempt(job.id, job.run_lease, JobState.FAILED, error)], START
            )
        else:
            assert decision.run_at is not None
            applied = await store.jobs.reschedule_batch(
                [Rescheduled(job.id, job.run_lease, decision.state, decision.run_at, error, False)],
                START,
            )
        assert applied == {job.id}
        final = await store.admin.get_job(job.id)
        assert final.state is JobState.CANCELLED
        assert final.errors[-1]["message"] == "operator says stop"
    finally:
        await store.close()


@pytest.mark.parametrize(("max_attempts", "base"), [(3, 0.0), (3, 1.0), (1, 0.0)])
async def test_rescue_honours_cancel_request(
    database_url: str, max_attempts: int, base: float
) -> None:
    """The holder of a running job dies after an operator asked to cancel the job: the
    rescue ends it cancelled with the operator's reason, whether it would have been
    requeued (now or with backoff) or failed (no attempts left). Not a rescue: no
    ``job.rescued`` event, no rescue error record, counted as cancelled only. (Found by the
    state machine: the rescue used to requeue it and clear the request.)"""
    store = await _open(database_url)
    try:
        job = await _running(store, max_attempts, instance="dead-runtime")  # no presence lock
        await store.admin.cancel_job(job.id, "operator says stop", START)
        later = START + timedelta(seconds=5)
        orphaned, _stale = await store.recovery.find_rescuable_running(0.5, 30.0, 100, later)
        assert orphaned == [(job.id, job.run_lease)]
        outcome = await store.recovery.rescue(
            orphaned, from_states=["running"], reason="gone", retry_base_delay=base, now=later
        )
        assert outcome == RescueOutcome(0, 0, frozenset(), 1)
        final = await store.admin.get_job(job.id)
        assert final.state is JobState.CANCELLED, f"rescued into {final.state}"
        assert [(e["kind"], e["message"]) for e in final.errors] == [
            ("cancelled", "operator says stop")
        ]
        events = await store.db.pool.fetch("SELECT kind FROM awa.events WHERE job_id = $1", job.id)
        assert [r["kind"] for r in events] == []
        again = await store.recovery.rescue(
            orphaned, from_states=["running"], reason="gone", retry_base_delay=base, now=later
        )
        assert again == RescueOutcome(0, 0, frozenset(), 0)  # stale: nothing left to do
    finally:
        await store.close()


async def test_rescue_cancels_only_the_attempts_it_was_given(database_url: str) -> None:
    """One rescue batch: a cancel-requested attempt ends cancelled, its neighbours are
    rescued as usual, and a cancel-requested attempt outside the batch or in another state
    than the rescue's is left alone."""
    store = await _open(database_url)
    try:
        for _ in range(3):
            await store.jobs.insert_job(InsertParams("a", max_attempts=3), now=START)
        a, b, c = sorted(
            await store.jobs.claim_batch("default", ["a"], 3, "gone", START), key=lambda j: j.id
        )
        await store.admin.cancel_job(a.id, "stop a", START)
        await store.admin.cancel_job(c.id, "stop c", START)
        later = START + timedelta(seconds=5)
        wrong_state = await store.recovery.rescue(
            [(a.id, a.run_lease)],
            from_states=["waiting_external"],
            reason="gone",
            retry_base_delay=0.0,
            now=later,
        )
        assert wrong_state == RescueOutcome(0, 0, frozenset(), 0)
        outcome = await store.recovery.rescue(
            [(a.id, a.run_lease), (b.id, b.run_lease)],
            from_states=["running"],
            reason="gone",
            retry_base_delay=0.0,
            now=later,
        )
        assert outcome == RescueOutcome(1, 0, frozenset({"default"}), 1)
        assert (await store.admin.get_job(a.id)).state is JobState.CANCELLED
        assert (await store.admin.get_job(b.id)).state is JobState.AVAILABLE
        assert (await store.admin.get_job(c.id)).state is JobState.RUNNING
    finally:
        await store.close()


async def test_cancel_racing_a_requeue_is_not_refused(database_url: str) -> None:
    """A worker's retry flush commits while an operator's cancel is between its two
    statements. Either serial order ends the job cancelled; today the cancel raises
    ``InvalidTransition`` ("state 'available'") and the job stays queued."""
    store = await _open(database_url)
    flush = await connect(database_url)
    try:
        job = await _running(store, 3)
        tx = flush.transaction()
        await tx.start()
        await flush.fetch(  # the completion buffer's retry flush, not committed yet
            sql_text("reschedule_batch"),
            [job.id],
            [job.run_lease],
            ["retryable"],
            [START],
            [None],
            [False],
            START,
            None,
        )

        async def commit_when_cancel_waits() -> None:
            await _wait_for_lock_wait(store)
            await tx.commit()

        answer, committed = await asyncio.gather(
            store.admin.cancel_job(job.id, "stop", START),
            commit_when_cancel_waits(),
            return_exceptions=True,
        )
        assert committed is None, committed
        if isinstance(answer, BaseException):
            raise answer
        assert answer.state is JobState.CANCELLED
    finally:
        await flush.close()
        await store.close()


async def test_deadlock_between_a_flush_and_a_rescue_is_a_retryable_error(
    database_url: str,
) -> None:
    """A paused worker flushes completions for two attempts while maintenance rescues both
    (retry one, then fail the other, in one transaction): the row locks cross and
    PostgreSQL aborts the flush. Nothing was written; the error must say "retry"
    (``DatabaseConflict``, which the completion buffer and the heartbeat retry), not escape
    as a driver error that would end the runtime. (The store's lock order is not global, so
    this deadlock can happen; the typed error is what makes it harmless.)"""
    store = await _open(database_url)
    rescuer = await connect(database_url)
    try:
        await store.jobs.insert_job(
            InsertParams("a", max_attempts=1), now=START
        )  # y: fails on rescue
        await store.jobs.insert_job(InsertParams("a", max_attempts=3), now=START)  # x: retried
        y, x = sorted(
            await store.jobs.claim_batch("default", ["a"], 2, "w", START), key=lambda j: j.id
        )
        tx = rescuer.transaction()
        await tx.start()
        retried = await rescuer.fetch(
            sql_text("rescue_retry"),
            [x.id],
            [x.run_lease],
            ["running"],
            "gone",
            0.0,
            START,
            None,
            None,
        )
        assert len(retried) == 1  # the rescue holds x

        async def rescue_the_other() -> None:
            await _wait_for_lock_wait(store)  # the flush holds y and waits for x
            with pytest.raises(asyncpg.exceptions.LockNotAvailableError):
                await store.db.pool.execute(
                    "SELECT 1 FROM awa.jobs WHERE id = $1 FOR UPDATE NOWAIT", y.id
                )
            await rescuer.fetch(
                sql_text("rescue_fail"),
                [y.id],
                [y.run_lease],
                ["running"],
                "gone",
                START,
                None,
                None,
            )
            await tx.commit()

        flushed, rescued = await asyncio.gather(
            store.jobs.complete_batch(
                [y.id, x.id], [y.run_lease, x.run_lease], [None, None], START
            ),
            rescue_the_other(),
            return_exceptions=True,
        )
        assert rescued is None, rescued
        assert isinstance(flushed, BaseException), f"no deadlock: {flushed}"
        assert isinstance(flushed, DatabaseConflict), repr(flushed)
        assert (await store.admin.get_job(y.id)).state is JobState.FAILED
        assert (await store.admin.get_job(x.id)).state is JobState.AVAILABLE
    finally:
        await rescuer.close()
        await store.close()
