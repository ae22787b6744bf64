"""What a task is once its create body has been validated, independent of the wire format."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

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


class InstanceRecord(NamedTuple):
    """Immutable, and a tuple: a big task's full JSON builds 10^5 of them, and a frozen
    dataclass costs several times more to construct."""

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


@dataclass(frozen=True)
class InstanceTotals:
    """What a task's derived fields need of all its instances, which the store keeps as the
    instances change: deriving then costs the same at 10 or 10^5 instances."""

    counts: Mapping[InstanceState, int]
    # each instance's progress, 100 for a final one
    progress_sum: float
    # the wall time of every ended attempt
    wall_sum: float
    first_start: datetime | None
    last_end: datetime | None
    # the active instances that have started, and the sum of their starts (starts_ms)
    running_started: int = 0
    started_ms_sum: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def running_seconds(self, now: datetime) -> float:
        """How long the running instances have run so far, all together."""
        return max(0, self.running_started * starts_ms(now) - self.started_ms_sum) / 1000


# starts are summed as whole ms since then (store migration 0016 rounds them alike)
STARTS_EPOCH = datetime(2020, 1, 1)


def starts_ms(at: datetime) -> int:
    """``at`` in ms since STARTS_EPOCH, to the nearest, halves up."""
    return ((at - STARTS_EPOCH) // timedelta(microseconds=1) + 500) // 1000


def totals_of(instances: Iterable[InstanceRecord]) -> InstanceTotals:
    counts: dict[InstanceState, int] = {}
    progress_sum = wall_sum = 0.0
    first_start: datetime | None = None
    last_end: datetime | None = None
    running_started = started_ms_sum = 0
    for inst in instances:
        counts[inst.state] = counts.get(inst.state, 0) + 1
        if inst.state in ACTIVE_INSTANCE_STATES and inst.started_at is not None:
            running_started += 1
            started_ms_sum += starts_ms(inst.started_at)
        progress_sum += 100.0 if inst.state in FINAL_INSTANCE_STATES else inst.progress
        wall_sum += inst.wall_time_sec
        if inst.started_at is not None and (first_start is None or inst.started_at < first_start):
            first_start = inst.started_at
        if inst.ended_at is not None and (last_end is None or inst.ended_at > last_end):
            last_end = inst.ended_at
    return InstanceTotals(
        counts, progress_sum, wall_sum, first_start, last_end, running_started, started_ms_sum
    )


def derive(
    instances: list[InstanceRecord], cores: float, cancel_requested: bool, now: datetime
) -> Derived:
    return derive_from(totals_of(instances), cores, cancel_requested, now)


def derive_from(
    totals: InstanceTotals, cores: float, cancel_requested: bool, now: datetime
) -> Derived:
    """The derivation from a task's totals alone: the same work at 10 or 10^5 instances."""
    execution = totals.wall_sum + totals.running_seconds(now)
    state = derive_task_state(totals.counts, cancel_requested)
    counts = totals.counts
    running = counts.get(InstanceState.EXECUTING, 0) + counts.get(InstanceState.UPLOADING, 0)
    wall = 0.0
    last_end = totals.last_end
    if totals.first_start is not None:
        until = last_end if state in FINAL_TASK_STATES and last_end is not None else now
        wall = max(0.0, (until - totals.first_start).total_seconds())
    n = totals.total
    return Derived(
        state=state,
        progress=round(totals.progress_sum / n, 2) if n else 100.0,
        running_instance_count=running,
        running_core_count=whole_cores(running * cores),
        execution_time_sec=execution,
        wall_time_sec=wall,
        first_start=totals.first_start,
    )
