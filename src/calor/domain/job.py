"""What a job is (contract §6): a named group of tasks that may order them by dependencies."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from calor.domain.states import JobState


@dataclass(frozen=True)
class JobSpec:
    name: str
    shortname: str | None
    pool_uuid: str | None
    tags: tuple[str, ...]
    use_dependencies: bool
    # terminate the job this long after its creation (maxWallTime)
    max_wall_time_sec: float | None
    # delete the job (and its tasks) this long after it completes, when auto_delete
    auto_delete: bool
    completion_ttl_sec: float
    # submitted fields echoed back unchanged (the timespans as the client wrote them)
    document: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobRecord:
    id: int
    uuid: str
    name: str
    shortname: str
    pool_uuid: str | None
    state: JobState
    previous_state: JobState
    creation_date: datetime
    state_transition_time: datetime
    previous_state_transition_time: datetime
    last_modified: datetime
    end_date: datetime | None
    use_dependencies: bool
    document: dict[str, Any]
    tags: list[str] = field(default_factory=list)
