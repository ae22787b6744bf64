"""The state machine: transitions, task-state derivation, retry decisions."""

from datetime import datetime, timedelta

import pytest

from calor.domain.errors import Conflict
from calor.domain.states import (
    FINAL_INSTANCE_STATES,
    can_transition,
    check_transition,
    derive_task_state,
    should_retry,
)
from calor.domain.states import (
    InstanceState as I,
)
from calor.domain.states import (
    TaskState as T,
)
from calor.domain.task import InstanceRecord, derive


def test_final_instance_states_are_terminal() -> None:
    for final in FINAL_INSTANCE_STATES:
        for other in I:
            if other != final:
                assert not can_transition(final, other)
                with pytest.raises(Conflict):
                    check_transition(final, other)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (I.QUEUED, I.DISPATCHED),
        (I.DISPATCHED, I.EXECUTING),
        (I.EXECUTING, I.SUCCESS),
        (I.EXECUTING, I.QUEUED),  # retry
        (I.EXECUTING, I.CANCELLED),
        (I.QUEUED, I.CANCELLED),
    ],
)
def test_allowed_moves(old: I, new: I) -> None:
    check_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"), [(I.QUEUED, I.EXECUTING), (I.QUEUED, I.SUCCESS), (I.UPLOADING, I.QUEUED)]
)
def test_forbidden_moves(old: I, new: I) -> None:
    assert not can_transition(old, new)


@pytest.mark.parametrize(
    ("counts", "cancel", "expected"),
    [
        ({I.QUEUED: 3}, False, T.SUBMITTED),
        ({I.QUEUED: 2, I.DISPATCHED: 1}, False, T.PARTIALLY_DISPATCHED),
        ({I.DISPATCHED: 3}, False, T.FULLY_DISPATCHED),
        ({I.DISPATCHED: 1, I.SUCCESS: 2}, False, T.FULLY_DISPATCHED),
        ({I.QUEUED: 1, I.EXECUTING: 1}, False, T.PARTIALLY_EXECUTING),
        ({I.EXECUTING: 2, I.SUCCESS: 1}, False, T.FULLY_EXECUTING),
        ({I.UPLOADING: 2, I.SUCCESS: 1}, False, T.UPLOADING_RESULTS),
        ({I.SUCCESS: 3}, False, T.SUCCESS),
        ({I.SUCCESS: 2, I.FAILURE: 1}, False, T.FAILURE),
        ({I.SUCCESS: 2, I.CANCELLED: 1}, False, T.CANCELLED),
        ({I.SUCCESS: 3}, True, T.CANCELLED),
        ({I.EXECUTING: 1}, True, T.FULLY_EXECUTING),  # still running until it has stopped
    ],
)
def test_task_state_is_derived_from_instances(
    counts: dict[I, int], cancel: bool, expected: T
) -> None:
    assert derive_task_state(counts, cancel) == expected


def test_retry_rules() -> None:
    # no settings: no retry
    assert not should_retry(1, None, 0, None)
    # two retries per instance: attempts 1 and 2 may be retried, 3 may not
    assert should_retry(1, 2, 0, None)
    assert should_retry(2, 2, 1, None)
    assert not should_retry(3, 2, 2, None)
    # the task-wide budget caps everything
    assert not should_retry(1, 5, 3, 3)
    # a total budget alone lets any instance retry while the budget lasts
    assert should_retry(1, None, 0, 2)
    assert not should_retry(1, None, 2, 2)


def _inst(
    state: I, started: datetime | None, ended: datetime | None, wall: float, progress: float = 0.0
) -> InstanceRecord:
    return InstanceRecord(1, 0, state, 1, progress, started, ended, wall, 0.0, 0, None, None)


def test_derived_fields() -> None:
    t0 = datetime(2026, 1, 1, 12, 0, 0)
    now = t0 + timedelta(seconds=10)
    running = _inst(I.EXECUTING, t0, None, 0.0, progress=50.0)
    done = _inst(I.SUCCESS, t0 + timedelta(seconds=2), t0 + timedelta(seconds=5), 3.0)
    d = derive([running, done], cores=2, cancel_requested=False, now=now)
    assert d.state == T.FULLY_EXECUTING
    assert d.progress == 75.0
    assert d.running_instance_count == 1
    assert d.running_core_count == 2
    assert d.execution_time_sec == pytest.approx(13.0)
    assert d.wall_time_sec == pytest.approx(10.0)
    # once everything ended, wall time stops at the last end, not "now"
    finished = derive([done], cores=1, cancel_requested=False, now=now + timedelta(hours=1))
    assert finished.state == T.SUCCESS
    assert finished.wall_time_sec == pytest.approx(3.0)
