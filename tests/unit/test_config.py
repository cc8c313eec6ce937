"""Configuration is validated on construction, naming the field that is wrong."""

from __future__ import annotations

import pytest

from awa.config import MaintenanceConfig, RecoveryPolicy, RuntimeConfig
from awa.errors import ValidationError


def test_defaults_are_valid() -> None:
    config = RuntimeConfig()
    assert config.queues == {"default": 50} and config.pool_size == 10
    assert MaintenanceConfig().mode == "split"
    assert RecoveryPolicy().attempts == 5


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"queues": ["default"]}, "queues"),
        ({"queues": {"": 1}}, "queues"),
        ({"queues": {"q": 0}}, "queues['q']"),
        ({"queues": {"q": True}}, "queues['q']"),
        ({"instance_id": "  "}, "instance_id"),
        ({"poll_interval": -1}, "poll_interval"),
        ({"heartbeat_interval": "5"}, "heartbeat_interval"),
        ({"claim_batch": 0}, "claim_batch"),
        ({"completion_batch": 100_001}, "completion_batch"),
        ({"pool_size": 1}, "pool_size"),
    ],
)
def test_runtime_config_refuses(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        RuntimeConfig(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"attempts": 0}, "startup_recovery.attempts"),
        ({"attempts": True}, "startup_recovery.attempts"),
        ({"delay": -0.1}, "startup_recovery.delay"),
        ({"page_size": 0}, "startup_recovery.page_size"),
    ],
)
def test_recovery_policy_refuses(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        RecoveryPolicy(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_maintenance_config_refuses_unknown_mode_and_bad_intervals() -> None:
    with pytest.raises(ValidationError) as info:
        MaintenanceConfig(mode="fast")
    assert info.value.field == "mode" and "split" in info.value.reason
    with pytest.raises(ValidationError) as info:
        MaintenanceConfig(intervals={"rotate": 0})
    assert info.value.field == "intervals['rotate']"
