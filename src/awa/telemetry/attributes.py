"""The attribute keys awa puts on metrics and spans (``awa.telemetry.catalogue`` says which
instrument carries which). Namespaced ``awa.*`` except the conventional ``error.type`` and
the OpenTelemetry messaging conventions' ``messaging.*`` (on the job span only, ADR 025).
Values are low-cardinality (queue, kind, branch, outcome); ids only go on spans.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ATTR_ACTION",
    "ATTR_ATTEMPT",
    "ATTR_BRANCH",
    "ATTR_BRANCH_SHORT",
    "ATTR_CRON_SCHEDULE",
    "ATTR_ERROR_TYPE",
    "ATTR_JOB_ID",
    "ATTR_JOB_KIND",
    "ATTR_JOB_STATE",
    "ATTR_LANE",
    "ATTR_LOOP",
    "ATTR_MESSAGING_DESTINATION",
    "ATTR_MESSAGING_MESSAGE_ID",
    "ATTR_MESSAGING_OPERATION_NAME",
    "ATTR_MESSAGING_OPERATION_TYPE",
    "ATTR_MESSAGING_SYSTEM",
    "ATTR_OUTBOX_SINK",
    "ATTR_OUTCOME",
    "ATTR_QUEUE",
    "ATTR_RESCUE_REASON",
]

ATTR_QUEUE: Final = "awa.queue"
ATTR_JOB_KIND: Final = "awa.job.kind"
ATTR_JOB_ID: Final = "awa.job.id"
ATTR_ATTEMPT: Final = "awa.job.attempt"
ATTR_JOB_STATE: Final = "awa.job.state"
ATTR_OUTCOME: Final = "awa.outcome"
#: The overrun counter's short branch label (Prometheus: ``branch``).
ATTR_BRANCH_SHORT: Final = "branch"
ATTR_RESCUE_REASON: Final = "awa.rescue.reason"
ATTR_ERROR_TYPE: Final = "error.type"
ATTR_LANE: Final = "awa.maintenance.lane"
ATTR_BRANCH: Final = "awa.maintenance.branch"
ATTR_ACTION: Final = "awa.maintenance.action"
ATTR_CRON_SCHEDULE: Final = "awa.cron.schedule"
ATTR_OUTBOX_SINK: Final = "awa.outbox.sink"
ATTR_LOOP: Final = "awa.runtime.loop"
# OpenTelemetry messaging semantic conventions: on the job span only (ADR 025).
ATTR_MESSAGING_SYSTEM: Final = "messaging.system"
ATTR_MESSAGING_DESTINATION: Final = "messaging.destination.name"
ATTR_MESSAGING_OPERATION_TYPE: Final = "messaging.operation.type"
ATTR_MESSAGING_OPERATION_NAME: Final = "messaging.operation.name"
ATTR_MESSAGING_MESSAGE_ID: Final = "messaging.message.id"
