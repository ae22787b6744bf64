"""What a task is once its create body has been validated, independent of the wire format."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from calor.domain.dependencies import Dependency, DependencyState
from calor.domain.hardware import whole_cores
from calor.domain.states import (
    ACTIVE_INSTANCE_STATES,
    FINAL_INSTANCE_STATES,
    FINAL_TASK_STATES,
    InstanceState,
    TaskState,
    derive_task_state,
)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    shortname: str | None
    profile: str
    instance_ids: tuple[int, ...]
    advanced_ranges: str | None
    constants: tuple[tuple[str, str], ...]
    tags: tuple[str, ...]
    # per instance; a share below 1 for the slots of a pool node split by slotsPerNode
    cores: float
    max_per_instance_retries: int | None
    max_total_retries: int | None
    pool_uuid: str | None = None
    job_uuid: str | None = None
    project_uuid: str | None = None
    result_bucket: str | None = None
    # the submitted fields that calor echoes back unchanged in the full task object
    document: dict[str, Any] = field(default_factory=dict)
    # tasks of the same job it waits for (its job must have useDependencies)
    dependencies: tuple[Dependency, ...] = ()
    # maxTimeQueueSeconds (None or 0: no limit)
    max_queue_sec: int | None = None
    # autoDeleteOnCompletion: deleted this long after it ends (None: kept)
    completion_ttl_sec: float | None = None


@dataclass(frozen=True)
class InstanceRecord:
    row_id: int
    instance_id: int
    state: InstanceState
    attempts: int
    progress: float
    started_at: datetime | None
    ended_at: datetime | None
    wall_time_sec: float
    cpu_time_sec: float
    peak_memory_mb: int
    exit_code: int | None
    error: str | None
    transfer_progress: float = 0.0
    results: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskRecord:
    id: int
    uuid: str
    name: str
    shortname: str
    profile: str
    pool_uuid: str | None
    job_uuid: str | None
    project_uuid: str | None
    result_bucket: str | None
    state: TaskState
    previous_state: TaskState
    creation_date: datetime
    state_transition_time: datetime
    previous_state_transition_time: datetime
    last_modified: datetime
    end_date: datetime | None
    instance_count: int
    advanced_ranges: str | None
    cores: float
    progress: float
    running_instance_count: int
    running_core_count: int
    execution_time_sec: float
    wall_time_sec: float
    results_count: int
    errors: list[dict[str, str]]
    document: dict[str, Any]
    tags: list[str] = field(default_factory=list)
    instances: list[InstanceRecord] = field(default_factory=list)
    snapshot_interval: int = 0
    dependency_state: DependencyState | None = None
    # each dependency with its task's state (None while unknown) and whether it still exists;
    # loaded with the full task
    dependencies: list[tuple[Dependency, TaskState | None, bool]] = field(default_factory=list)


@dataclass(frozen=True)
class Derived:
    """Task fields that are functions of its instances (contract §3.2)."""

    state: TaskState
    progress: float
    running_instance_count: int
    running_core_count: int
    execution_time_sec: float
    wall_time_sec: float
    first_start: datetime | None


def derive(
    instances: list[InstanceRecord], cores: float, cancel_requested: bool, now: datetime
) -> Derived:
    counts: dict[InstanceState, int] = {}
    progress_sum = 0.0
    execution = 0.0
    first_start: datetime | None = None
    last_end: datetime | None = None
    for inst in instances:
        if inst.ended_at is not None and (last_end is None or inst.ended_at > last_end):
            last_end = inst.ended_at
        counts[inst.state] = counts.get(inst.state, 0) + 1
        progress_sum += 100.0 if inst.state in FINAL_INSTANCE_STATES else inst.progress
        execution += inst.wall_time_sec
        if inst.started_at is not None:
            if inst.state in ACTIVE_INSTANCE_STATES:
                execution += max(0.0, (now - inst.started_at).total_seconds())
            if first_start is None or inst.started_at < first_start:
                first_start = inst.started_at
    state = derive_task_state(counts, cancel_requested)
    running = counts.get(InstanceState.EXECUTING, 0) + counts.get(InstanceState.UPLOADING, 0)
    wall = 0.0
    if first_start is not None:
        until = last_end if state in FINAL_TASK_STATES and last_end is not None else now
        wall = max(0.0, (until - first_start).total_seconds())
    return Derived(
        state=state,
        progress=round(progress_sum / len(instances), 2) if instances else 100.0,
        running_instance_count=running,
        running_core_count=whole_cores(running * cores),
        execution_time_sec=execution,
        wall_time_sec=wall,
        first_start=first_start,
    )
