"""The worker side: dispatch, execution, heartbeat and batched result recording."""

from awa.worker.completions import CompletionBuffer
from awa.worker.dispatcher import QueueDispatcher
from awa.worker.heartbeat import Heartbeat
from awa.worker.inflight import InFlight, StopReason
from awa.worker.wakeups import Wakeups

__all__ = ["CompletionBuffer", "Heartbeat", "InFlight", "QueueDispatcher", "StopReason", "Wakeups"]
