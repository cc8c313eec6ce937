"""The console's operator pages' JSON API: lane history, cron, dead letters, events outbox
(issue 17, ADR 033).

Kept apart from ``console_api`` (lanes, queues, jobs) so each module stays one page family.
Reads are open to whoever can reach the console; every POST passes ``Guard.check_action``
(operator token + CSRF secret, ADR 031) before it touches anything.

Lane staleness uses the health interval the leader persisted with its health rows, unless
the console was started with an override (``console_app(health_interval=...)``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from awa.admin import Admin
from awa.errors import ValidationError
from awa.web.console_api import Json, query_int
from awa.web.console_guard import Guard

__all__ = ["ConsoleOpsApi"]

#: Most dead letters or events one page returns.
MAX_PAGE = 200

#: What the lanes page charts per sample (the rest of a sample stays in the database).
_SAMPLE_FIELDS = (
    "seq",
    "sampled_at",
    "interval_s",
    "last_lateness_s",
    "max_lateness_s",
    "last_duration_s",
    "overruns",
    "runs",
    "delayed",
)


def _limit(request: Request) -> int:
    limit = query_int(request, "limit", 50)
    if limit is None or not 1 <= limit <= MAX_PAGE:
        raise ValidationError("limit", limit, f"expected 1..{MAX_PAGE}")
    return limit


def _text(request: Request, name: str) -> str | None:
    return request.query_params.get(name, "").strip() or None


async def _body(request: Request) -> dict[str, Any]:
    """The POST's JSON object ({} when empty); anything else is a 400."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise ValidationError("body", raw[:80], "expected a JSON object") from None
    if not isinstance(body, dict):
        raise ValidationError("body", body, "expected a JSON object")
    return body


class ConsoleOpsApi:
    """The endpoints, over an ``Admin`` opened on demand."""

    def __init__(
        self,
        admin: Callable[[], Awaitable[Admin]],
        guard: Guard,
        health_interval: float | None = None,
    ) -> None:
        self._admin = admin
        self._guard = guard
        self._health_interval = health_interval

    # ------------------------------------------------------------------ lanes

    async def lanes(self, request: Request) -> Response:
        """Branches with the data's age and the leader's liveness; stale data is STALE.
        The interval comes from the leader (persisted) unless overridden."""
        admin = await self._admin()
        return Json(await admin.maintenance.lanes(self._health_interval))

    async def lane_history(self, request: Request) -> Response:
        """Per branch, its persisted samples oldest first, plus the same age/liveness
        verdict as ``/api/lanes`` so the charts can say how old they are."""
        admin = await self._admin()
        lanes = await admin.maintenance.lanes(self._health_interval)
        history = await admin.maintenance.history(_text(request, "branch"))
        keep = (
            "now",
            "leader",
            "leader_alive",
            "stale",
            "data_age_s",
            "stale_after_s",
            "health_interval_s",
            "health_interval_source",
        )
        lane_of = {b["branch"]: b["lane"] for b in lanes["branches"]}
        return Json(
            {
                **{k: lanes[k] for k in keep},
                "branches": [
                    {
                        "branch": name,
                        "lane": lane_of.get(name, samples[-1]["lane"]),
                        "samples": [{k: s[k] for k in _SAMPLE_FIELDS} for s in samples],
                    }
                    for name, samples in sorted(history.items())
                ],
            }
        )

    # ------------------------------------------------------------------- cron

    async def cron(self, request: Request) -> Response:
        """Every schedule: next and last fire, misses, paused (in code or by an operator)."""
        admin = await self._admin()
        return Json({"schedules": await admin.cron.all()})

    async def cron_action(self, request: Request) -> Response:
        self._guard.check_action(request)
        name, action = request.path_params["name"], request.path_params["action"]
        admin = await self._admin()
        if action == "pause":
            await admin.cron.pause(name)
            return Json({"schedule": name, "operator_paused": True})
        if action == "resume":
            await admin.cron.resume(name)
            return Json({"schedule": name, "operator_paused": False})
        if action == "run":
            job = await admin.cron.run_now(name)
            return Json({"schedule": name, "job": job.as_dict()})
        raise ValidationError("action", action, "expected pause, resume or run")

    # ------------------------------------------------------------ dead letters

    async def dead_letters(self, request: Request) -> Response:
        """Newest first, filtered by queue/kind, retried ones on ``retried=1``; keyset
        pages by ``before_id``."""
        limit = _limit(request)
        admin = await self._admin()
        letters = await admin.dlq.list_letters(
            queue=_text(request, "queue"),
            kind=_text(request, "kind"),
            include_retried=request.query_params.get("retried") in ("1", "true"),
            limit=limit,
            before_id=query_int(request, "before_id"),
        )
        return Json(
            {
                "letters": [_letter(d.as_dict()) for d in letters],
                "next_before_id": letters[-1].id if len(letters) == limit else None,
            }
        )

    async def dead_letter_action(self, request: Request) -> Response:
        self._guard.check_action(request)
        letter_id, action = request.path_params["letter_id"], request.path_params["action"]
        admin = await self._admin()
        if action == "retry":
            job = await admin.dlq.retry(letter_id)
            return Json({"dead_letter_id": letter_id, "job": job.as_dict()})
        if action == "purge":
            return Json({"purged": await admin.dlq.purge_letters([letter_id])})
        raise ValidationError("action", action, "expected retry or purge")

    async def purge_all_dead_letters(self, request: Request) -> Response:
        """Every letter (of ``queue`` when given), only with ``{"confirm": "purge"}``: a
        stray POST must not empty the hold."""
        self._guard.check_action(request)
        body = await _body(request)
        if body.get("confirm") != "purge":
            raise ValidationError("confirm", body.get("confirm"), 'expected "purge"')
        queue = body.get("queue")
        if queue is not None and not isinstance(queue, str):
            raise ValidationError("queue", queue, "expected a queue name")
        admin = await self._admin()
        purged = await admin.dlq.purge(queue=queue, everything=queue is None)
        return Json({"purged": purged})

    # ----------------------------------------------------------------- events

    async def events(self, request: Request) -> Response:
        """Sinks with their backlog, and recent events (newest first, keyset by
        ``before_id``) with their per-sink deliveries."""
        limit = _limit(request)
        admin = await self._admin()
        events = await admin.events.recent(
            limit=limit, before_id=query_int(request, "before_id"), kind=_text(request, "kind")
        )
        return Json(
            {
                "sinks": await admin.events.sinks(),
                "events": events,
                "next_before_id": events[-1]["id"] if len(events) == limit else None,
            }
        )


def _letter(letter: dict[str, Any]) -> dict[str, Any]:
    """A list row: the letter without its args and full error history."""
    keep = ("id", "kind", "queue", "attempt", "max_attempts", "dead_at", "reason")
    row = {k: letter[k] for k in keep}
    row.update(
        retried_at=letter["retried_at"],
        retried_job_id=letter["retried_job_id"],
        errors=len(letter["errors"] or []),
    )
    return row
