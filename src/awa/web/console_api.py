"""The console's JSON API: one endpoint per page, and the actions (ADR 031).

Reads are open to anyone who can reach the console; every POST passes ``Guard`` first.
The queues page reads the leader's persisted ``queue_stats`` (cheap: no scan of the job
tables per refresh) plus the pause table, which is small and always current, so a pause
shows at once while depth and lag are as old as ``queue_stats_age_s`` says.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from awa.admin import Admin
from awa.admin.jobs import BULK_ACTIONS, JobFilter
from awa.errors import ValidationError
from awa.web.asgi import to_json
from awa.web.console_guard import COOKIE, Guard

__all__ = ["ConsoleApi", "Json", "query_int"]

#: Most jobs one page of the jobs list returns.
MAX_PAGE = 200


class Json(JSONResponse):
    """JSON with datetimes as ISO 8601 (the admin layer returns them as they are)."""

    def render(self, content: Any) -> bytes:
        return to_json(content)


def query_int(request: Request, name: str, default: int | None = None) -> int | None:
    """Query parameter ``name`` as an integer (``default`` when absent or blank); anything
    else is a ``ValidationError`` naming the parameter (HTTP 400). Shared by both API
    modules of the console."""
    raw = request.query_params.get(name, "").strip()
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationError(name, raw, "expected an integer") from None


class ConsoleApi:
    """The endpoints, over an ``Admin`` opened on demand."""

    def __init__(self, admin: Callable[[], Awaitable[Admin]], guard: Guard) -> None:
        self._admin = admin
        self._guard = guard

    # ---------------------------------------------------------------- session

    async def session(self, request: Request) -> Response:
        """What the page may offer: actions allowed now, and whether a login could allow
        them."""
        guard = self._guard
        return Json(
            {
                "operator": guard.is_operator(request),
                "read_only": guard.read_only and guard.token is None,
                "login": guard.login_possible,
            }
        )

    async def login(self, request: Request) -> Response:
        """Check the token once and keep it in an HttpOnly cookie scoped to the console."""
        body = await request.json() if await request.body() else {}
        presented = str(body.get("token", "")) if isinstance(body, dict) else ""
        self._guard.check_login(request, presented)
        response = Json({"operator": True})
        response.set_cookie(
            COOKIE,
            presented,
            path=_base(request),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(self, request: Request) -> Response:
        self._guard.check_csrf(request)
        response = Json({"operator": False})
        response.delete_cookie(COOKIE, path=_base(request))
        return response

    # ------------------------------------------------------------------ reads

    async def status(self, request: Request) -> Response:
        """The lane dashboard's original document (leader, branches, queue stats)."""
        return Json(await (await self._admin()).maintenance.snapshot())

    async def queues(self, request: Request) -> Response:
        """Per queue: counts by live state, depth and lag, jobs finished per second
        (throughput, over the leader's last queue_stats window), paused."""
        admin = await self._admin()
        stats = await admin.maintenance.queue_stats()
        pauses = {p.queue: p.as_dict() for p in await admin.queues.list()}
        queues: dict[str, dict[str, Any]] = {}
        for row in stats["queues"]:
            q = queues.setdefault(row["queue"], _queue(row["queue"]))
            q["states"][row["state"]] = row["count"]
            if row["state"] == "available":
                q["depth"] = row["count"]
                q["lag_s"] = row["lag_s"]
        for row in stats["finished"]:  # per second over the leader's last window
            window = float(row["window_s"] or 0.0)
            if window > 0:
                q = queues.setdefault(row["queue"], _queue(row["queue"]))
                q["per_s"][row["state"]] = round(float(row["finished"]) / window, 3)
        for name, pause in pauses.items():
            queues.setdefault(name, _queue(name)).update(paused=True, pause=pause)
        return Json(
            {
                "queues": [queues[name] for name in sorted(queues)],
                "stats_age_s": stats["age_s"],
                "now": stats["now"],
            }
        )

    async def jobs(self, request: Request) -> Response:
        """Newest first, filtered by queue/kind/state/tag/finished-between; keyset paging
        by ``before_id``."""
        limit = query_int(request, "limit", 50) or 50
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError("limit", limit, f"expected 1..{MAX_PAGE}")
        where = _filter(request.query_params)
        admin = await self._admin()
        found = await admin.jobs.find(where, limit=limit, before_id=query_int(request, "before_id"))
        return Json(
            {
                "jobs": [_summary(j.as_dict()) for j in found],
                "filter": where.as_dict(),
                "next_before_id": found[-1].id if len(found) == limit else None,
            }
        )

    async def bulk_count(self, request: Request) -> Response:
        """How many jobs a bulk action would touch under the filter: the figure the
        operator confirms ("Retry 37 failed jobs of queue mail?")."""
        action = request.path_params["action"]
        where = _filter(request.query_params)
        admin = await self._admin()
        count = await admin.jobs.count(action, where)
        return Json({"action": action, "filter": where.as_dict(), "count": count})

    async def job(self, request: Request) -> Response:
        admin = await self._admin()
        return Json((await admin.jobs.get(request.path_params["job_id"])).as_dict())

    # ---------------------------------------------------------------- actions

    async def queue_action(self, request: Request) -> Response:
        self._guard.check_action(request)
        name, action = request.path_params["name"], request.path_params["action"]
        admin = await self._admin()
        if action == "pause":
            outcome = await admin.queues.pause(name, by="console")
            return Json({"queue": name, "paused": True, "created": outcome.created})
        if action == "resume":
            resumed = await admin.queues.resume(name)
            return Json({"queue": name, "paused": False, "resumed": resumed})
        raise ValidationError("action", action, "expected pause or resume")

    async def job_action(self, request: Request) -> Response:
        self._guard.check_action(request)
        job_id, action = request.path_params["job_id"], request.path_params["action"]
        admin = await self._admin()
        if action == "retry":
            job = await admin.jobs.retry(job_id)
        elif action == "cancel":
            job = await admin.jobs.cancel(job_id, "cancelled from the console")
        elif action == "discard":
            discarded = await admin.jobs.discard(job_id)
            return Json({**discarded.as_dict(), "discarded": True})
        else:
            raise ValidationError("action", action, "expected retry, cancel or discard")
        return Json(job.as_dict())

    async def bulk_action(self, request: Request) -> Response:
        """``POST /api/jobs/bulk/<action>`` with ``{"filter": {...}, "confirmed": N}``:
        act on at most N jobs; 409 if the filter now matches more (ADR 032)."""
        self._guard.check_action(request)
        action = request.path_params["action"]
        if action not in BULK_ACTIONS:
            raise ValidationError("action", action, f"expected one of {', '.join(BULK_ACTIONS)}")
        body = await request.json() if await request.body() else {}
        if not isinstance(body, dict) or not isinstance(body.get("filter", {}), dict):
            raise ValidationError("body", body, 'expected {"filter": {...}, "confirmed": N}')
        confirmed = body.get("confirmed")
        if not isinstance(confirmed, int) or isinstance(confirmed, bool) or confirmed < 0:
            raise ValidationError("confirmed", confirmed, "expected the count you confirmed")
        where = _filter(body.get("filter", {}))
        admin = await self._admin()
        outcome = await admin.jobs.bulk(action, where, confirmed=confirmed)
        return Json({**outcome.as_dict(), "filter": where.as_dict()})


def _filter(given: Mapping[str, Any]) -> JobFilter:
    """The jobs filter from query parameters or a JSON object (unknown keys ignored)."""
    fields = ("state", "queue", "kind", "tag", "since", "until")
    values = {k: given.get(k) for k in fields}
    for key, value in values.items():
        if value is not None and not isinstance(value, str):
            raise ValidationError(key, value, "expected text")
    return JobFilter.of(**values)


def _base(request: Request) -> str:
    """The console's own path (its mount point), which scopes its cookie."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/") + "/"


def _queue(name: str) -> dict[str, Any]:
    return {
        "queue": name,
        "states": {},
        "depth": 0,
        "lag_s": None,
        "per_s": {},  # completed / failed / cancelled per second (throughput)
        "paused": False,
        "pause": None,
    }


def _summary(job: dict[str, Any]) -> dict[str, Any]:
    """A list row: the job without its args, result and error texts (detail has them)."""
    keep = ("id", "kind", "queue", "state", "attempt", "max_attempts", "priority", "run_at", "tags")
    row = {k: job[k] for k in keep}
    row.update(created_at=job["created_at"], finalized_at=job["finalized_at"])
    row["errors"] = len(job["errors"] or [])
    return row
