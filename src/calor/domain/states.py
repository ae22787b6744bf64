"""Task and instance states (contract §4): one transition table and one derivation function.

An instance moves through its own life cycle; the task's state is never stored independently
but derived from its instances' states, so the two can never disagree.
"""

from collections.abc import Mapping
from enum import StrEnum

from calor.domain.errors import Conflict


class InstanceState(StrEnum):
    # held until the task's dependencies are met (a job with useDependencies)
    WAITING = "Waiting"
    QUEUED = "Queued"
    DISPATCHED = "Dispatched"
    EXECUTING = "Executing"
    UPLOADING = "UploadingResults"
    SUCCESS = "Success"
    FAILURE = "Failure"
    CANCELLED = "Cancelled"


class TaskState(StrEnum):
    SUBMITTED = "Submitted"
    PARTIALLY_DISPATCHED = "PartiallyDispatched"
    FULLY_DISPATCHED = "FullyDispatched"
    PARTIALLY_EXECUTING = "PartiallyExecuting"
    FULLY_EXECUTING = "FullyExecuting"
    UPLOADING_RESULTS = "UploadingResults"
    SUCCESS = "Success"
    FAILURE = "Failure"
    CANCELLED = "Cancelled"


FINAL_INSTANCE_STATES = frozenset(
    {InstanceState.SUCCESS, InstanceState.FAILURE, InstanceState.CANCELLED}
)
ACTIVE_INSTANCE_STATES = frozenset(
    {InstanceState.DISPATCHED, InstanceState.EXECUTING, InstanceState.UPLOADING}
)
FINAL_TASK_STATES = frozenset({TaskState.SUCCESS, TaskState.FAILURE, TaskState.CANCELLED})
# a task counts against maxRunningTask from its first dispatched instance to its end
RUNNING_TASK_STATES = frozenset(TaskState) - FINAL_TASK_STATES - {TaskState.SUBMITTED}

# Each allowed move, with the failure it exists to allow (or to prevent, by absence).
INSTANCE_TRANSITIONS: Mapping[InstanceState, frozenset[InstanceState]] = {
    # dependencies met (→ Queued), or never to be met, or the task aborted (→ Cancelled)
    InstanceState.WAITING: frozenset({InstanceState.QUEUED, InstanceState.CANCELLED}),
    # queued work is handed to an executor, cancelled before it ever runs, or fails when it
    # waited longer than maxTimeQueueSeconds for resources
    InstanceState.QUEUED: frozenset(
        {InstanceState.DISPATCHED, InstanceState.CANCELLED, InstanceState.FAILURE}
    ),
    # a dispatched instance may never start (runtime missing → Failure), may be retried
    # (→ Queued) when its executor is lost, or cancelled
    InstanceState.DISPATCHED: frozenset(
        {
            InstanceState.EXECUTING,
            InstanceState.QUEUED,
            InstanceState.SUCCESS,
            InstanceState.FAILURE,
            InstanceState.CANCELLED,
        }
    ),
    InstanceState.EXECUTING: frozenset(
        {
            InstanceState.UPLOADING,
            InstanceState.QUEUED,
            InstanceState.SUCCESS,
            InstanceState.FAILURE,
            InstanceState.CANCELLED,
        }
    ),
    InstanceState.UPLOADING: frozenset(
        {InstanceState.SUCCESS, InstanceState.FAILURE, InstanceState.CANCELLED}
    ),
    # final states are final: a late event from a killed process must not resurrect them
    InstanceState.SUCCESS: frozenset(),
    InstanceState.FAILURE: frozenset(),
    InstanceState.CANCELLED: frozenset(),
}


def can_transition(old: InstanceState, new: InstanceState) -> bool:
    return old == new or new in INSTANCE_TRANSITIONS[old]


def check_transition(old: InstanceState, new: InstanceState) -> None:
    if not can_transition(old, new):
        raise Conflict(f"an instance cannot go from {old} to {new}")


def derive_task_state(counts: Mapping[InstanceState, int], cancel_requested: bool) -> TaskState:
    """The task state implied by how many instances are in each state.

    Retried instances are back in Queued, so a task never looks final while a retry is pending.
    """
    total = sum(counts.values())
    final = sum(counts.get(s, 0) for s in FINAL_INSTANCE_STATES)
    if total == 0 or final == total:
        if cancel_requested or counts.get(InstanceState.CANCELLED, 0):
            return TaskState.CANCELLED
        if counts.get(InstanceState.FAILURE, 0):
            return TaskState.FAILURE
        return TaskState.SUCCESS
    remaining = total - final
    executing = counts.get(InstanceState.EXECUTING, 0)
    uploading = counts.get(InstanceState.UPLOADING, 0)
    dispatched = counts.get(InstanceState.DISPATCHED, 0)
    if uploading == remaining:
        return TaskState.UPLOADING_RESULTS
    if executing or uploading:
        if executing + uploading == remaining:
            return TaskState.FULLY_EXECUTING
        return TaskState.PARTIALLY_EXECUTING
    if dispatched:
        if dispatched == remaining:
            return TaskState.FULLY_DISPATCHED
        return TaskState.PARTIALLY_DISPATCHED
    return TaskState.SUBMITTED


def should_retry(
    attempts: int,
    max_per_instance: int | None,
    retries_used_by_task: int,
    max_total: int | None,
) -> bool:
    """Whether a failed attempt is run again (retrySettings, contract §3.1).

    ``attempts`` counts executions so far including the failed one; an instance with
    ``max_per_instance`` = 2 runs at most three times. No setting means no retry.
    """
    per_instance = max_per_instance if max_per_instance is not None else (max_total or 0)
    if attempts - 1 >= per_instance:
        return False
    return max_total is None or retries_used_by_task < max_total


# Instances that have not been handed to an executor yet (an abort cancels them at once)
PENDING_INSTANCE_STATES = frozenset({InstanceState.WAITING, InstanceState.QUEUED})


class JobState(StrEnum):
    """Contract §4.4: a job takes tasks while Active; terminate (or maxWallTime) aborts what
    is left and it is Completed once every task has ended."""

    ACTIVE = "Active"
    TERMINATING = "Terminating"
    COMPLETED = "Completed"
    DELETING = "Deleting"
