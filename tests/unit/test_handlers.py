"""Handler registration by kind, and the parts of a handler's JobContext that need no database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from awa.clock import FakeClock
from awa.errors import ConfigError, InvalidTransition, ValidationError
from awa.handlers import HandlerRegistry, HandlerSpec, JobContext, check_description
from awa.model import CALLBACK_METADATA_KEY, MAX_KIND_LENGTH, Job, JobState, hash_callback_token

NOW = datetime(2030, 1, 1, tzinfo=UTC)
TIMEOUT_AT = datetime(2030, 1, 1, 0, 5, tzinfo=UTC)


async def handler_a(ctx: JobContext) -> None:
    return None


async def handler_b(ctx: JobContext) -> None:
    return None


def make_job(
    *, progress: Any = None, metadata: dict[str, Any] | None = None, attempt: int = 1
) -> Job:
    return Job(
        id=42,
        kind="email",
        queue="default",
        args={"to": "a@example.com"},
        state=JobState.RUNNING,
        priority=2,
        attempt=attempt,
        max_attempts=3,
        run_at=NOW,
        created_at=NOW,
        metadata={} if metadata is None else metadata,
        progress=progress,
        run_lease=7,
    )


@dataclass
class Registration:
    job_id: int
    run_lease: int
    callback_id: uuid.UUID
    token_hash: bytes
    timeout: float
    resume: bool
    now: datetime | None


class FakeRegistrar:
    """A CallbackRegistrar that records each call and answers ``timeout_at``."""

    def __init__(self, timeout_at: datetime | None = TIMEOUT_AT) -> None:
        self.timeout_at = timeout_at
        self.calls: list[Registration] = []

    async def register_callback(
        self,
        job_id: int,
        run_lease: int,
        callback_id: uuid.UUID,
        token_hash: bytes,
        timeout: float,
        resume: bool,
        now: datetime | None = None,
    ) -> datetime | None:
        self.calls.append(
            Registration(job_id, run_lease, callback_id, token_hash, timeout, resume, now)
        )
        return self.timeout_at


# ------------------------------------------------------------------------- HandlerRegistry


def test_register_returns_the_spec_and_get_finds_it_by_kind() -> None:
    registry = HandlerRegistry()
    spec = registry.register(
        "send_email", handler_a, queue="mail", timeout=timedelta(minutes=2), description="Sends"
    )
    assert spec == HandlerSpec("send_email", handler_a, "mail", 120.0, "Sends")
    assert registry.get("send_email") is spec
    assert registry.get("missing") is None


def test_register_defaults_to_the_default_queue_with_no_timeout_or_description() -> None:
    spec = HandlerRegistry().register("k", handler_a)
    assert (spec.queue, spec.timeout, spec.description) == ("default", None, None)


def test_registry_lists_kinds_sorted_iterates_in_registration_order_and_counts() -> None:
    registry = HandlerRegistry()
    assert len(registry) == 0 and registry.kinds() == [] and list(registry) == []
    registry.register("zeta", handler_a)
    registry.register("alpha", handler_b)
    assert registry.kinds() == ["alpha", "zeta"]
    assert [spec.kind for spec in registry] == ["zeta", "alpha"]
    assert len(registry) == 2


def test_registering_a_kind_twice_is_an_error_and_keeps_the_first_handler() -> None:
    registry = HandlerRegistry()
    first = registry.register("send_email", handler_a)
    with pytest.raises(ValidationError) as info:
        registry.register("send_email", handler_b, queue="other")
    assert (info.value.field, info.value.value) == ("kind", "send_email")
    assert info.value.reason == "a handler for this kind is already registered"
    assert registry.get("send_email") is first and len(registry) == 1


@pytest.mark.parametrize(
    "kind", ["a", "send_email", "billing.invoice:v2/retry-1", "Émission", "x" * MAX_KIND_LENGTH]
)
def test_register_accepts_letters_digits_and_the_allowed_punctuation(kind: str) -> None:
    assert HandlerRegistry().register(kind, handler_a).kind == kind


@pytest.mark.parametrize("kind", ["", "x" * (MAX_KIND_LENGTH + 1), 5, None, b"kind"])
def test_register_refuses_an_empty_overlong_or_non_text_kind(kind: object) -> None:
    registry = HandlerRegistry()
    with pytest.raises(ValidationError) as info:
        registry.register(kind, handler_a)  # type: ignore[arg-type]
    assert info.value.field == "kind"
    assert info.value.reason == f"expected 1..{MAX_KIND_LENGTH} characters"
    assert len(registry) == 0


@pytest.mark.parametrize("kind", ["send email", "a,b", "a\x00b", "kind!", "a\tb", "\nkind"])
def test_register_refuses_characters_outside_the_kind_alphabet(kind: str) -> None:
    registry = HandlerRegistry()
    with pytest.raises(ValidationError) as info:
        registry.register(kind, handler_a)
    assert (info.value.field, info.value.value) == ("kind", kind)
    assert info.value.reason == "use letters, digits and _ . : / - only"
    assert len(registry) == 0


def test_register_refuses_a_kind_with_a_trailing_newline() -> None:
    with pytest.raises(ValidationError):
        HandlerRegistry().register("send_email\n", handler_a)


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), "30", True, timedelta(0)])
def test_register_refuses_a_bad_timeout_and_registers_nothing(timeout: object) -> None:
    registry = HandlerRegistry()
    with pytest.raises(ValidationError) as info:
        registry.register("k", handler_a, timeout=timeout)  # type: ignore[arg-type]
    assert info.value.field == "timeout"
    assert registry.get("k") is None and len(registry) == 0


def test_register_refuses_a_bad_description_and_registers_nothing() -> None:
    registry = HandlerRegistry()
    with pytest.raises(ValidationError) as info:
        registry.register("k", handler_a, description="x" * 2001)
    assert info.value.field == "description"
    assert registry.get("k") is None
    # The kind is still free: the failed registration did not claim it.
    assert registry.register("k", handler_a).kind == "k"


def test_decorator_registers_the_function_and_returns_it_unchanged() -> None:
    registry = HandlerRegistry()

    @registry("resize", queue="images", timeout=30, description="Resizes")
    async def resize(ctx: JobContext) -> None:
        return None

    spec = registry.get("resize")
    assert spec == HandlerSpec("resize", resize, "images", 30.0, "Resizes")
    assert spec is not None and spec.fn is resize


def test_decorator_refuses_a_duplicate_kind_when_applied() -> None:
    registry = HandlerRegistry()
    registry("k")(handler_a)
    decorate = registry("k")  # nothing is checked until the decorator is applied
    with pytest.raises(ValidationError, match="already registered"):
        decorate(handler_b)
    spec = registry.get("k")
    assert spec is not None and spec.fn is handler_a


# ----------------------------------------------------------------------- check_description


@pytest.mark.parametrize("value", ["", "Sends the welcome email", "é" * 2000, "a\nb"])
def test_check_description_returns_text_up_to_2000_characters_unchanged(value: str) -> None:
    assert check_description(value) == value


def test_check_description_passes_none_through() -> None:
    assert check_description(None) is None


@pytest.mark.parametrize("value", ["x" * 2001, "a\x00b", b"bytes", 5, ["list"]])
def test_check_description_refuses_overlong_nul_or_non_text(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        check_description(value)
    assert (info.value.field, info.value.value) == ("description", value)
    assert info.value.reason == "expected text of at most 2000 characters"


def test_check_description_refuses_a_lone_surrogate() -> None:
    with pytest.raises(ValidationError):
        check_description("bad \ud800 text")


# ------------------------------------------------------------------ JobContext: progress


def test_context_exposes_the_job_its_args_and_its_stored_progress() -> None:
    job = make_job(progress={"done": 3})
    ctx = JobContext(job)
    assert ctx.job is job
    assert ctx.args == {"to": "a@example.com"}
    assert ctx.progress == {"done": 3}


def test_take_progress_reports_unchanged_until_progress_is_set() -> None:
    ctx = JobContext(make_job(progress={"done": 3}))
    assert ctx.take_progress() == (False, {"done": 3})
    ctx.set_progress({"done": 4})
    assert ctx.progress == {"done": 4}
    assert ctx.take_progress() == (True, {"done": 4})
    assert ctx.take_progress() == (False, {"done": 4})


def test_set_progress_snapshots_the_value_so_later_mutation_changes_nothing() -> None:
    ctx = JobContext(make_job())
    progress: dict[str, Any] = {"items": [1, 2], "stage": "copy"}
    ctx.set_progress(progress)
    progress["items"].append(3)
    progress["stage"] = "done"
    assert ctx.progress == {"items": [1, 2], "stage": "copy"}
    assert ctx.progress is not progress


def test_set_progress_stores_the_json_round_trip_of_the_value() -> None:
    ctx = JobContext(make_job())
    ctx.set_progress({"t": (1, 2), "n": 1.5})
    assert ctx.progress == {"n": 1.5, "t": [1, 2]}


@pytest.mark.parametrize("value", [{"x": object()}, {"x": float("nan")}, {"x": "a\x00b"}])
def test_set_progress_refuses_unserialisable_values_and_keeps_the_previous_one(
    value: object,
) -> None:
    ctx = JobContext(make_job(progress={"done": 1}))
    with pytest.raises(ValidationError) as info:
        ctx.set_progress(value)
    assert info.value.field == "progress"
    assert ctx.take_progress() == (False, {"done": 1})


# ------------------------------------------------------------------ JobContext: callbacks


def test_callback_is_none_on_a_fresh_attempt() -> None:
    assert JobContext(make_job()).callback is None


def test_callback_is_the_resolution_stored_for_this_attempt() -> None:
    stored = {"attempt": 2, "id": "cb-1", "payload": {"ok": True}}
    ctx = JobContext(make_job(metadata={CALLBACK_METADATA_KEY: stored}, attempt=2))
    callback = ctx.callback
    assert callback is not None
    assert (callback.id, callback.payload) == ("cb-1", {"ok": True})


def test_callback_of_an_earlier_attempt_is_not_resumed() -> None:
    stored = {"attempt": 1, "id": "cb-1", "payload": {"ok": True}}
    ctx = JobContext(make_job(metadata={CALLBACK_METADATA_KEY: stored}, attempt=2))
    assert ctx.callback is None


def test_callback_ignores_a_stored_value_that_is_not_an_object() -> None:
    ctx = JobContext(make_job(metadata={CALLBACK_METADATA_KEY: "cb-1"}))
    assert ctx.callback is None


async def test_register_callback_without_a_registrar_is_a_config_error() -> None:
    ctx = JobContext(make_job())
    with pytest.raises(ConfigError, match="no callback registrar"):
        await ctx.register_callback(timeout=60)


async def test_register_callback_records_a_hashed_token_and_returns_the_callback() -> None:
    registrar = FakeRegistrar()
    ctx = JobContext(make_job(), callbacks=registrar)
    callback = await ctx.register_callback(timeout=timedelta(minutes=5), resume=True)
    assert len(registrar.calls) == 1
    call = registrar.calls[0]
    assert (call.job_id, call.run_lease, call.timeout, call.resume, call.now) == (
        42,
        7,
        300.0,
        True,
        None,
    )
    assert call.token_hash == hash_callback_token(callback.token)
    assert call.token_hash != callback.token.encode()
    assert callback.id == str(call.callback_id)
    assert (callback.job_id, callback.run_lease, callback.timeout_at, callback.resume) == (
        42,
        7,
        TIMEOUT_AT,
        True,
    )


async def test_register_callback_passes_the_clock_database_time() -> None:
    registrar = FakeRegistrar()
    ctx = JobContext(make_job(), callbacks=registrar, clock=FakeClock(NOW))
    callback = await ctx.register_callback(timeout=60)
    assert registrar.calls[0].now == NOW
    assert registrar.calls[0].resume is False and callback.resume is False


async def test_register_callback_gives_each_call_a_fresh_id_and_token() -> None:
    first = await JobContext(make_job(), callbacks=FakeRegistrar()).register_callback(timeout=1)
    second = await JobContext(make_job(), callbacks=FakeRegistrar()).register_callback(timeout=1)
    assert first.id != second.id and first.token != second.token


async def test_register_callback_twice_in_one_attempt_is_an_invalid_transition() -> None:
    registrar = FakeRegistrar()
    ctx = JobContext(make_job(), callbacks=registrar)
    await ctx.register_callback(timeout=60)
    with pytest.raises(InvalidTransition) as info:
        await ctx.register_callback(timeout=60)
    assert (info.value.job_id, info.value.state, info.value.action) == (
        42,
        "running",
        "register a second callback for",
    )
    assert len(registrar.calls) == 1


async def test_register_callback_after_the_job_was_taken_over_is_an_invalid_transition() -> None:
    registrar = FakeRegistrar(timeout_at=None)
    ctx = JobContext(make_job(), callbacks=registrar)
    with pytest.raises(InvalidTransition) as info:
        await ctx.register_callback(timeout=60)
    assert (info.value.job_id, info.value.state, info.value.action) == (
        42,
        "taken over",
        "register a callback for",
    )
    assert str(info.value) == "cannot register a callback for job id=42 in state 'taken over'"


@pytest.mark.parametrize("timeout", [0, -5, float("inf"), "60", timedelta(seconds=-1)])
async def test_register_callback_refuses_a_bad_timeout_before_writing(timeout: object) -> None:
    registrar = FakeRegistrar()
    ctx = JobContext(make_job(), callbacks=registrar)
    with pytest.raises(ValidationError) as info:
        await ctx.register_callback(timeout=timeout)  # type: ignore[arg-type]
    assert info.value.field == "timeout"
    assert registrar.calls == []


async def test_register_callback_refuses_a_missing_timeout_as_a_validation_error() -> None:
    ctx = JobContext(make_job(), callbacks=FakeRegistrar())
    with pytest.raises(ValidationError):
        await ctx.register_callback(timeout=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("resume", [1, "yes", None])
async def test_register_callback_refuses_a_non_bool_resume_before_writing(resume: object) -> None:
    registrar = FakeRegistrar()
    ctx = JobContext(make_job(), callbacks=registrar)
    with pytest.raises(ValidationError) as info:
        await ctx.register_callback(timeout=60, resume=resume)  # type: ignore[arg-type]
    assert (info.value.field, info.value.value) == ("resume", resume)
    assert info.value.reason == "expected True or False"
    assert registrar.calls == []


async def test_a_refused_registration_leaves_the_attempt_free_to_register() -> None:
    registrar = FakeRegistrar()
    ctx = JobContext(make_job(), callbacks=registrar)
    with pytest.raises(ValidationError):
        await ctx.register_callback(timeout=0)
    callback = await ctx.register_callback(timeout=60)
    assert callback.timeout_at == TIMEOUT_AT and len(registrar.calls) == 1
