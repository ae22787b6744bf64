"""Job use cases (contract §2.4): create, read, page, search, list a job's tasks, terminate,
delete."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from calor.domain.filters import Filter
from calor.domain.job import JobRecord, JobSpec
from calor.domain.task import TaskRecord
from calor.services.tasks import (
    InstanceControl,
    TaskService,
    decode_token,
    encode_token,
    every_page,
    page_size,
    utcnow,
)
from calor.settings import Limits
from calor.store.jobs import JobStore


@dataclass(frozen=True)
class JobPage:
    jobs: list[JobRecord]
    token: str | None
    next_token: str | None


class JobService:
    def __init__(
        self,
        jobs: JobStore,
        tasks: TaskService,
        limits: Limits,
        control: InstanceControl,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.jobs = jobs
        self.tasks = tasks
        self.limits = limits
        self.control = control
        self.clock = clock

    def create(self, user_id: int, spec: JobSpec) -> str:
        job_uuid = self.jobs.insert(user_id, spec, self.clock(), self.limits.max_jobs_per_user)
        if spec.max_wall_time_sec:
            self.control.wake()
        return job_uuid

    def get(self, user_id: int, key: str) -> JobRecord:
        return self.jobs.get(user_id, key)

    def page(
        self, user_id: int, flt: Filter | None, token: str | None, size: int | None
    ) -> JobPage:
        records, more = self.jobs.page(
            user_id, flt, decode_token(token), page_size(self.limits, size)
        )
        return JobPage(records, token, encode_token(records[-1].id) if more and records else None)

    def search(self, user_id: int, flt: Filter | None, size: int | None) -> list[JobRecord]:
        limit = size if size and size > 0 else self.limits.page_max
        return self.jobs.page(user_id, flt, 0, min(limit, self.limits.page_max))[0]

    def iterate(self, user_id: int, flt: Filter | None) -> Iterator[JobRecord]:
        return every_page(lambda after: self.jobs.page(user_id, flt, after, 500))

    def tasks_of(self, user_id: int, key: str) -> Iterator[TaskRecord]:
        """The job's tasks, oldest first (NotFound before the first one if there is no job)."""
        job_id = self.jobs.id_of(user_id, key)
        return self.tasks.iterate(user_id, None, True, job_id)

    def terminate(self, user_id: int, key: str) -> None:
        self.control.abort(self.jobs.terminate(user_id, key, self.clock()))

    def delete(self, user_id: int, key: str, force: bool) -> None:
        self.control.abort(self.jobs.delete(user_id, key, force, self.clock()))
