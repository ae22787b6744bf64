"""The boundaries of the domain: what an executor is given, what it reports, what it offers."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class InstanceJob:
    """Everything one instance attempt needs to run, copied out of the store."""

    row_id: int
    task_uuid: str
    instance_id: int
    instance_count: int
    attempt: int
    profile: str
    constants: dict[str, str]
    cores: int
    network: bool = False
    memory_limit_mb: int | None = None
    user_id: int = 0


@dataclass(frozen=True)
class Started:
    row_id: int
    at: datetime
    pid: int
    proc_start: float


@dataclass(frozen=True)
class Output:
    row_id: int
    stream: int  # 1 stdout, 2 stderr
    data: str


@dataclass(frozen=True)
class Progress:
    row_id: int
    value: float


@dataclass(frozen=True)
class Finished:
    row_id: int
    at: datetime
    exit_code: int | None
    cpu_time_sec: float = 0.0
    peak_memory_mb: int = 0
    wall_time_sec: float = 0.0
    error: str | None = None
    cancelled: bool = False
    # the attempt never got a fair run (server stopping, executor lost): requeue for free
    interrupted: bool = False
    extra: dict[str, str] = field(default_factory=dict)


InstanceEvent = Started | Output | Progress | Finished
EventSink = Callable[[InstanceEvent], None]


class Executor(Protocol):
    """Runs instance attempts and reports their events through the sink it was built with."""

    @property
    def total_cores(self) -> int: ...

    def free_cores(self) -> int: ...

    def start(self, job: InstanceJob) -> None: ...

    def abort(self, row_ids: list[int]) -> None: ...

    def stop(self, grace_seconds: float) -> None: ...


class Clock(Protocol):
    def __call__(self) -> datetime: ...
