"""Task use cases: submit, read, page, search, logs, abort, delete."""

import base64
import binascii
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from calor.domain.errors import BadRequest, CalorError, NotFound
from calor.domain.filters import Filter
from calor.domain.task import TaskRecord, TaskSpec
from calor.settings import Limits
from calor.store.logs import Chunk, LogStore
from calor.store.tasks import Counts, TaskStore


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def encode_token(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"calor:{last_id}".encode()).decode().rstrip("=")


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix != "calor" or not 0 <= int(number) < 2**63:
            raise ValueError
        return int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest(f"token {token!r} is not a page token issued by this server") from None


@dataclass(frozen=True)
class Page:
    tasks: list[TaskRecord]
    token: str | None
    next_token: str | None


class TaskService:
    def __init__(
        self,
        tasks: TaskStore,
        logs: LogStore,
        limits: Limits,
        wake: Callable[[], None],
        abort: Callable[[list[int]], None],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.tasks = tasks
        self.logs = logs
        self.limits = limits
        self.wake = wake
        self.abort_instances = abort
        self.clock = clock

    def submit(self, user_id: int, specs: list[TaskSpec]) -> list[str | CalorError]:
        results = self.tasks.insert(user_id, specs, self.clock(), self.limits.max_tasks_per_user)
        self.wake()
        return results

    def get(self, user_id: int, key: str) -> TaskRecord:
        return self.tasks.get(user_id, key)

    def update(self, user_id: int, key: str, spec: TaskSpec) -> None:
        self.tasks.replace_document(user_id, key, spec, self.clock())

    def abort(self, user_id: int, key: str) -> None:
        self.abort_instances(self.tasks.request_abort(user_id, key, self.clock()))

    def delete(self, user_id: int, key: str) -> None:
        self.abort_instances(self.tasks.delete(user_id, key, self.clock()))

    def page_size(self, requested: int | None) -> int:
        if requested is None or requested <= 0:
            return self.limits.page_default
        return min(requested, self.limits.page_max)

    def page(
        self, user_id: int, flt: Filter | None, token: str | None, size: int | None, full: bool
    ) -> Page:
        after = decode_token(token)
        records, more = self.tasks.page(user_id, flt, after, self.page_size(size), full)
        next_token = encode_token(records[-1].id) if more and records else None
        return Page(records, token, next_token)

    def search(self, user_id: int, flt: Filter | None, size: int | None) -> list[TaskRecord]:
        limit = size if size and size > 0 else self.limits.page_max
        records, _ = self.tasks.page(user_id, flt, 0, min(limit, self.limits.page_max), True)
        return records

    def iterate(self, user_id: int, flt: Filter | None, full: bool) -> Iterator[TaskRecord]:
        """Every matching task, fetched a page at a time (for the unpaginated list endpoints)."""
        after = 0
        while True:
            records, more = self.tasks.page(user_id, flt, after, 500, full)
            yield from records
            if not more or not records:
                return
            after = records[-1].id

    def counts(self, user_id: int) -> Counts:
        return self.tasks.counts(user_id)

    def output(
        self, user_id: int, key: str, stream: int, instance_id: int | None, fresh: bool
    ) -> str:
        task = self.tasks.get(user_id, key) if instance_id is not None else None
        task_id = task.id if task else self.tasks.id_of(user_id, key)
        if task is not None and instance_id not in {i.instance_id for i in task.instances}:
            raise NotFound(f"instance {instance_id} of task {key!r} not found")
        chunks = (
            self.logs.read_fresh(task_id, stream, instance_id)
            if fresh
            else self.logs.read(task_id, stream, instance_id)
        )
        return render(chunks, prefixed=instance_id is None)


def render(chunks: list[Chunk], prefixed: bool) -> str:
    """Task-level output prefixes each line with ``<instanceId>> `` (node docs)."""
    if not prefixed:
        return "".join(c.data for c in chunks)
    out: list[str] = []
    for c in chunks:
        prefix = f"{c.instance_id}> "
        out.extend(prefix + line for line in c.data.splitlines(keepends=True))
    return "".join(out)
