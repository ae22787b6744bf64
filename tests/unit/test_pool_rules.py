"""The pure pool rules: policies and their periods, resizing, and the pool state."""

from datetime import datetime, timedelta

import pytest

from calor.domain.errors import BadRequest
from calor.domain.pool import (
    Policy,
    PoolState,
    SlotState,
    SlotView,
    active_policy,
    derive_pool_state,
    elastic_policy,
    parse_policies,
    resize,
)
from calor.domain.states import InstanceState as I

MONDAY_NOON = datetime(2026, 11, 30, 12, 0)  # a Monday
E, Q = I.EXECUTING, I.QUEUED


def slot(row: int, use: SlotState | None, state: I = E, idle: float = 0.0) -> SlotView:
    return SlotView(row, state, use, MONDAY_NOON - timedelta(seconds=idle) if use else None)


def test_periods_pick_the_first_policy_that_applies() -> None:
    policies = parse_policies(
        [
            {
                "type": "Fixed",
                "name": "office",
                "slotsCount": 4,
                "enabledPeriods": [
                    {
                        "type": "Weekly",
                        "days": ["Monday", "tuesday"],
                        "startTimeUtc": "08:00:00",
                        "endTimeUtc": "18:00:00",
                    }
                ],
            },
            {"type": "ManagedTasksQueue", "name": "rest", "minTotalSlots": 0, "maxTotalSlots": 2},
        ]
    )
    assert active_policy(policies, MONDAY_NOON).name == "office"  # type: ignore[union-attr]
    assert active_policy(policies, MONDAY_NOON.replace(hour=19)).name == "rest"  # type: ignore[union-attr]
    assert active_policy(policies, MONDAY_NOON + timedelta(days=2)).name == "rest"  # type: ignore[union-attr]
    night = parse_policies(
        [
            {
                "type": "Fixed",
                "slotsCount": 1,
                "enabledPeriods": [
                    {
                        "type": "Weekly",
                        "days": ["monday"],
                        "startTimeUtc": "22:00:00",
                        "endTimeUtc": "02:00:00",
                    }
                ],
            }
        ]
    )
    assert active_policy(night, MONDAY_NOON.replace(hour=23)) is not None
    assert active_policy(night, MONDAY_NOON.replace(hour=1)) is not None
    assert active_policy(night, MONDAY_NOON) is None


@pytest.mark.parametrize(
    ("raw", "word"),
    [
        ("x", "array"),
        ([{"type": "Fixed", "slotsCount": "2"}], "slotsCount"),
        ([{"type": "Fixed", "slotsCount": 1, "enabledPeriods": [{"type": "Daily"}]}], "Always"),
        ([{"type": "Fixed", "enabledPeriods": [{"type": "Weekly", "days": ["funday"]}]}], "funday"),
        (
            [
                {
                    "type": "Fixed",
                    "enabledPeriods": [{"type": "Weekly", "days": ["monday"], "startTimeUtc": "x"}],
                }
            ],
            "startTimeUtc",
        ),
    ],
)
def test_bad_policies(raw: object, word: str) -> None:
    with pytest.raises(BadRequest, match=word):
        parse_policies(raw)


def test_managed_queue_grows_to_demand_within_bounds() -> None:
    policy = Policy("q", "ManagedTasksQueue", min_slots=1, max_slots=4, min_idle=1)
    assert resize(policy, [], 0, MONDAY_NOON).add == 1  # the minimum
    assert resize(policy, [slot(1, SlotState.BUSY)], 2, MONDAY_NOON).add == 3  # capped at 4
    half = Policy("q", "ManagedTasksQueue", 0, 10, factor=0.5)
    assert resize(half, [], 6, MONDAY_NOON).add == 3  # ramps by the factor
    # starting slots count as capacity on its way
    assert resize(policy, [slot(1, None, Q)], 0, MONDAY_NOON).add == 0


def test_shrinks_only_idle_slots_idle_long_enough() -> None:
    policy = Policy("q", "ManagedTasksQueue", 0, 4, min_idle=0, min_idle_seconds=30)
    slots = [
        slot(1, SlotState.BUSY),
        slot(2, SlotState.IDLE, idle=10),
        slot(3, SlotState.IDLE, idle=60),
    ]
    assert resize(policy, slots, 0, MONDAY_NOON).release == (3,)
    fixed = Policy("f", "Fixed", 1, 1)
    assert resize(fixed, slots, 0, MONDAY_NOON).release == (3, 2)  # never the busy one


def test_elastic_property_is_a_managed_policy() -> None:
    assert elastic_policy({"isElastic": False}) is None
    policy = elastic_policy({"isElastic": True, "minTotalSlots": 1, "maxTotalSlots": 3})
    assert policy is not None and (policy.min_slots, policy.max_slots) == (1, 3)
    with pytest.raises(BadRequest, match="maxTotalSlots"):
        elastic_policy({"isElastic": True, "minTotalSlots": 3, "maxTotalSlots": 1})


def test_pool_state() -> None:
    assert derive_pool_state({Q: 2}, False, False) is PoolState.SUBMITTED
    assert derive_pool_state({E: 1, Q: 1}, False, False) is PoolState.PARTIALLY_EXECUTING
    assert derive_pool_state({E: 2}, False, False) is PoolState.FULLY_EXECUTING
    assert derive_pool_state({}, False, True) is PoolState.FULLY_EXECUTING  # elastic, at zero
    assert derive_pool_state({I.FAILURE: 1}, False, False) is PoolState.FAILURE
    assert derive_pool_state({E: 1}, True, False) is PoolState.CLOSING
    assert derive_pool_state({I.CANCELLED: 2}, True, False) is PoolState.CLOSED
