"""``Store.events`` (``sql/events.sql``), the event outbox: fan-out to sinks, delivery claims and
results, sink health, retention, and the operator's list/flush/purge.

Events themselves are written by the statements that make the changes (``finalize_batch``,
``rescue_retry``/``rescue_fail``, ``cron_mark_alerted``; ``event_cron_fired`` in the cron
enqueue transaction, ``sql/cron.sql``), never here, so no caller can forget one or write one for
a change that rolled back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from awa.db.connect import RawJson
from awa.db.queries import paired_queries
from awa.errors import ValidationError
from awa.events import Event
from awa.store.database import Database, one_row

__all__ = [
    "AppliedResult",
    "ClaimedDelivery",
    "DeliveryResult",
    "Events",
    "SinkReport",
    "Subscription",
]

_QUERIES = paired_queries("events")


def _sql(name: str) -> str:
    return _QUERIES[name].sql


Outcome = Literal["delivered", "failed", "deferred"]


@dataclass(frozen=True)
class ClaimedDelivery:
    """One (event, sink) delivery claimed for this run under ``lease``."""

    event: Event
    lease: int
    attempts: int
    rejections: int
    due_at: datetime  # when it was due before the claim (a deferral restores it)


@dataclass(frozen=True)
class DeliveryResult:
    """What a run did with a claimed delivery (see ``event_record``)."""

    event_id: int
    lease: int
    outcome: Outcome
    due_at: datetime
    delay_s: float = 0.0  # failed: retry after this many seconds
    rejected: bool = False  # failed: the sink refused this event (counts towards parking)
    error: str | None = None


@dataclass(frozen=True)
class AppliedResult:
    event_id: int
    outcome: Outcome
    parked: bool
    attempts: int
    last_error: str | None


@dataclass(frozen=True)
class SinkReport:
    failures_before: int
    failures: int
    failing_since: datetime | None
    retry_at: datetime | None


def _count(status: str) -> int:
    """Rows affected, from a command tag like ``DELETE 12``."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except (ValueError, AttributeError):
        return 0


#: A sink's name and the event kinds it receives (``None``: all).
Subscription = tuple[str, frozenset[str] | None]


def _subscriptions_json(subscriptions: Sequence[Subscription]) -> RawJson:
    return RawJson(
        json.dumps(
            [
                {"sink": sink, "kinds": None if kinds is None else sorted(kinds)}
                for sink, kinds in subscriptions
            ]
        )
    )


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return dict(value) if isinstance(value, dict) else {"value": value}


class Events:
    """The outbox's deliveries and sinks."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def event_register_sinks(
        self, subscriptions: Sequence[Subscription], now: datetime | None = None
    ) -> None:
        """Record the sinks this leader delivers to (``(sink, kinds)``, kinds ``None`` =
        all), so fan-out keeps queueing for them whoever leads."""
        if not subscriptions:
            return
        payload = _subscriptions_json(subscriptions)
        await self._db.guard(
            lambda: self._db.run.execute(_sql("event_register_sinks"), payload, now)
        )

    async def event_fan_out(
        self, subscriptions: Sequence[Subscription], limit: int, now: datetime | None = None
    ) -> tuple[int, int]:
        """Give up to ``limit`` new events one pending delivery per matching sink: this
        leader's ``subscriptions`` and every other registered sink. Returns (events,
        deliveries)."""
        payload = _subscriptions_json(subscriptions)
        row = one_row(
            await self._db.guard(
                lambda: self._db.run.fetchrow(_sql("event_fan_out"), payload, limit, now)
            ),
            "event_fan_out",
        )
        return int(row["events"]), int(row["deliveries"])

    async def event_claim(
        self, sink: str, limit: int, lease_s: float, now: datetime | None = None
    ) -> list[ClaimedDelivery]:
        rows = await self._db.guard(
            lambda: self._db.run.fetch(_sql("event_claim"), sink, limit, lease_s, now)
        )
        claimed = [
            ClaimedDelivery(
                event=Event(
                    id=int(r["event_id"]),
                    kind=str(r["kind"]),
                    occurred_at=r["occurred_at"],
                    data=_as_dict(r["payload"]),
                ),
                lease=int(r["lease"]),
                attempts=int(r["attempts"]),
                rejections=int(r["rejections"]),
                due_at=r["due_at"],
            )
            for r in rows
        ]
        claimed.sort(key=lambda d: (d.due_at, d.event.id))
        return claimed

    async def event_record(
        self,
        sink: str,
        results: Sequence[DeliveryResult],
        *,
        park_after_rejections: int,
        now: datetime | None = None,
    ) -> list[AppliedResult]:
        """Apply results under their claim's lease; a result whose lease moved on (the
        claim expired and another run took the delivery) is skipped."""
        if not results:
            return []
        rows = await self._db.guard(
            lambda: self._db.run.fetch(
                _sql("event_record"),
                sink,
                [r.event_id for r in results],
                [r.lease for r in results],
                [r.outcome for r in results],
                [r.delay_s for r in results],
                [r.due_at for r in results],
                [r.rejected for r in results],
                [r.error for r in results],
                park_after_rejections,
                now,
            )
        )
        return [
            AppliedResult(
                int(r["event_id"]),
                r["outcome"],
                bool(r["parked"]),
                int(r["attempts"]),
                r["last_error"],
            )
            for r in rows
        ]

    async def event_sink_report(
        self,
        sink: str,
        *,
        delivered: int,
        failed: int,
        parked: int,
        unavailable: bool,
        rest_s: float,
        error: str | None,
        now: datetime | None = None,
    ) -> SinkReport | None:
        """Update the sink's health; ``None`` when the sink is not registered (forgotten
        by an operator during the run)."""
        row = await self._db.guard(
            lambda: self._db.run.fetchrow(
                _sql("event_sink_report"),
                sink,
                delivered,
                failed,
                parked,
                unavailable,
                rest_s,
                error,
                now,
            )
        )
        if row is None:
            return None
        return SinkReport(
            int(row["failures_before"]), int(row["failures"]), row["failing_since"], row["retry_at"]
        )

    async def event_sink_failures(self, sink: str) -> int:
        """The sink's current failure streak (drives its backoff)."""
        value = await self._db.guard(
            lambda: self._db.run.fetchval(_sql("event_sink_failures"), sink)
        )
        return int(value or 0)

    async def event_expire(self, retention: float, limit: int, now: datetime | None = None) -> int:
        status = await self._db.guard(
            lambda: self._db.run.execute(_sql("event_expire"), retention, limit, now)
        )
        return _count(status)

    async def event_unknown_sinks(self, known: Sequence[str]) -> list[dict[str, Any]]:
        rows = await self._db.guard(
            lambda: self._db.run.fetch(_sql("event_unknown_sinks"), list(known))
        )
        return [dict(r) for r in rows]

    async def event_backlog(self) -> dict[str, int]:
        """Sink name → outstanding deliveries (pending or parked)."""
        rows = await self._db.guard(lambda: self._db.run.fetch(_sql("event_backlog")))
        return {str(r["sink"]): int(r["waiting"]) for r in rows}

    # ------------------------------------------------------------ operators

    async def event_list(
        self, *, limit: int = 50, before_id: int | None = None, kind: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first, each with ``deliveries`` (one dict per sink)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise ValidationError("limit", limit, "expected 1..10000")
        rows = await self._db.guard(
            lambda: self._db.run.fetch(_sql("event_list"), limit, before_id, kind)
        )
        return [dict(r) for r in rows]

    async def event_sink_status(self) -> list[dict[str, Any]]:
        rows = await self._db.guard(lambda: self._db.run.fetch(_sql("event_sink_status")))
        return [dict(r) for r in rows]

    async def event_flush(self, sink: str | None = None, now: datetime | None = None) -> int:
        """Make outstanding deliveries (of ``sink``, or all) due now, parked ones included,
        and end the sink's backoff; returns the deliveries touched."""
        status = await self._db.guard(lambda: self._db.run.execute(_sql("event_flush"), sink, now))
        return _count(status)

    async def event_purge(self, sink: str | None = None, *, include_pending: bool = False) -> int:
        """Delete parked deliveries (of ``sink``, or all; pending ones too when asked);
        returns how many. This is the only way an undelivered event is dropped."""
        status = await self._db.guard(
            lambda: self._db.run.execute(_sql("event_purge"), sink, include_pending)
        )
        return _count(status)

    async def event_forget_sink(self, sink: str) -> int:
        """Forget a sink removed from the code: its registration and outstanding deliveries
        are deleted, so events are no longer queued for it. Returns the deliveries dropped."""
        status = await self._db.guard(lambda: self._db.run.execute(_sql("event_forget_sink"), sink))
        return _count(status)
