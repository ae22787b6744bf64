"""Task use cases: submit, read, page, search, logs, abort, delete, resources, snapshots."""

import base64
import binascii
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from calor.domain.errors import BadRequest, CalorError, Forbidden, NotFound
from calor.domain.filters import Filter
from calor.domain.hardware import check_cpu_models
from calor.domain.network import forward_rules
from calor.domain.secrets import keep_masked
from calor.domain.task import TaskRecord, TaskSpec
from calor.domain.transfer import SnapshotPlan, SnapshotRecord, check_patterns, resource_sources
from calor.settings import Limits
from calor.store.logs import Chunk, LogStore
from calor.store.snapshots import SnapshotStore
from calor.store.tasks import Counts, TaskStore


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class HasId(Protocol):
    @property
    def id(self) -> int: ...


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


R = TypeVar("R", bound=HasId)


def every_page(fetch: Callable[[int], tuple[list[R], bool]]) -> Iterator[R]:
    """Every record of a keyset-paged listing: ``fetch(after_id)`` gives a page and whether
    more exist (for the unpaginated list endpoints)."""
    after = 0
    while True:
        records, more = fetch(after)
        yield from records
        if not more or not records:
            return
        after = records[-1].id


def check_resource_buckets(
    bucket_exists: Callable[[int, str], bool], user_id: int, document: dict[str, Any]
) -> None:
    """A task's or pool's resource buckets must exist when it is submitted (contract §9.3)."""
    for name in dict.fromkeys(s.bucket for s in resource_sources(document)):
        if not bucket_exists(user_id, name):
            raise NotFound(f"the resource bucket {name!r} does not exist")


SecretsCheck = Callable[[int, Any, Any], None]


def no_secrets(_user: int, raw: Any, _already: Any) -> None:
    if raw and (raw.get("bySecret") or raw.get("byPrefix")):
        raise BadRequest("this server keeps no secrets: secretsAccessRights cannot be granted")


# a user's check of what they submit, (cores needed at once, what needs them): raises when
# refused (services/accounting.py)
Admission = Callable[[int], Callable[[float, str], None]]


def _admitted(_cores: float, _what: str) -> None:
    pass


def admit_all(_user: int) -> Callable[[float, str], None]:
    """No budgets nor quotas (services built without accounting, as in unit tests)."""
    return _admitted


def page_size(limits: Limits, requested: int | None) -> int:
    if requested is None or requested <= 0:
        return limits.page_default
    return min(requested, limits.page_max)


@dataclass(frozen=True)
class Page:
    tasks: list[TaskRecord]
    token: str | None
    next_token: str | None


class InstanceControl(Protocol):
    """What the use cases ask of the engine about instances (scheduler.Engine)."""

    def wake(self) -> None: ...

    def abort(self, row_ids: list[int]) -> None: ...

    def refresh(self, row_ids: list[int]) -> None: ...

    def snapshot(self, plan: SnapshotPlan) -> None: ...


class TaskService:
    def __init__(
        self,
        tasks: TaskStore,
        logs: LogStore,
        limits: Limits,
        control: InstanceControl,
        snapshots: SnapshotStore | None = None,
        bucket_exists: Callable[[int, str], bool] = lambda _user, _name: True,
        clock: Callable[[], datetime] = utcnow,
        check_secrets: SecretsCheck = no_secrets,
        cpu_models: Callable[[], list[str]] | None = None,
        admit: Admission = admit_all,
    ) -> None:
        self.tasks = tasks
        self.logs = logs
        self.limits = limits
        self.control = control
        self.snapshots = snapshots
        self.bucket_exists = bucket_exists
        self.clock = clock
        # secretsAccessRights.bySecret names secrets of the submitter (services/secrets.py)
        self.check_secrets = check_secrets
        # the CPU models of the machines instances can run on (None: not checked)
        self.cpu_models = cpu_models
        # budgets and computing quotas (services/accounting.py)
        self.admit = admit

    def _check_files(self, user_id: int, spec: TaskSpec) -> None:
        """Bad filters and missing resource buckets are refused at submit (contract §9.3)."""
        doc = spec.document
        check_patterns(
            (name, doc.get(name))
            for name in (
                "resultsWhitelist",
                "resultsBlacklist",
                "snapshotWhitelist",
                "snapshotBlacklist",
            )
        )
        check_resource_buckets(self.bucket_exists, user_id, doc)
        self.check_secrets(user_id, doc.get("secretsAccessRights"), None)
        if self.cpu_models is not None:
            check_cpu_models(doc.get("hardwareConstraints") or [], self.cpu_models())
        forward_rules(spec.profile, doc.get("forcedNetworkRules"))

    def submit(self, user_id: int, specs: list[TaskSpec]) -> list[str | CalorError]:
        """One result per spec, in order: a uuid, or why that spec was refused."""
        refused: dict[int, CalorError] = {}
        admit = self.admit(user_id)
        for i, spec in enumerate(specs):
            try:
                self._check_files(user_id, spec)
                # an instance on a pool runs on cores its pool's slot already holds
                admit(0.0 if spec.pool_uuid else spec.cores, "an instance of this task")
            except CalorError as exc:
                refused[i] = exc
        kept = [spec for i, spec in enumerate(specs) if i not in refused]
        inserted = iter(
            self.tasks.insert(user_id, kept, self.clock(), self.limits.max_tasks_per_user)
            if kept
            else []
        )
        self.control.wake()
        return [refused[i] if i in refused else next(inserted) for i in range(len(specs))]

    def refresh_resources(self, user_id: int, key: str) -> None:
        """PATCH /tasks/{uuid}: running instances fetch new or changed resource objects;
        instances that have not started yet fetch everything when they start anyway."""
        self.control.refresh(self.tasks.executing(user_id, key))

    def _snapshots(self) -> SnapshotStore:
        if self.snapshots is None:
            raise Forbidden("snapshots are not available on this server")
        return self.snapshots

    def snapshot(self, user_id: int, key: str, request: dict[str, Any]) -> str:
        plan = self._snapshots().trigger(user_id, key, request, self.clock())
        self.control.snapshot(plan)
        return plan.snapshot_id

    def periodic_snapshots(
        self, user_id: int, key: str, interval: Any, request: dict[str, Any]
    ) -> None:
        # bounded: a next due time past the year 9999 is an overflow, not a snapshot plan
        if isinstance(interval, bool) or not isinstance(interval, int) or not 0 <= interval < 2**31:
            raise BadRequest(
                f"interval must be a whole number of seconds from 0 to {2**31 - 1}, "
                f"not {interval!r}"
            )
        self._snapshots().set_periodic(user_id, key, interval, request, self.clock())

    def snapshot_status(self, user_id: int, key: str, snapshot_id: str) -> SnapshotRecord:
        return self._snapshots().get(user_id, key, snapshot_id)

    def get(self, user_id: int, key: str) -> TaskRecord:
        return self.tasks.get(user_id, key)

    def update(self, user_id: int, key: str, spec: TaskSpec) -> None:
        # the SDK re-sends the whole task: only grants it did not have before are looked up
        before = self.tasks.get(user_id, key).document
        self.check_secrets(
            user_id,
            spec.document.get("secretsAccessRights"),
            before.get("secretsAccessRights"),
        )
        constants = keep_masked(spec.document.get("constants") or [], before.get("constants"))
        spec = replace(spec, document={**spec.document, "constants": constants})
        self.tasks.replace_document(user_id, key, spec, self.clock())

    def abort(self, user_id: int, key: str) -> None:
        self.control.abort(self.tasks.request_abort(user_id, key, self.clock()))

    def delete(self, user_id: int, key: str) -> None:
        self.control.abort(self.tasks.delete(user_id, key, self.clock()))

    def page(
        self,
        user_id: int,
        flt: Filter | None,
        token: str | None,
        size: int | None,
        full: bool,
        descending: bool = False,
    ) -> Page:
        after = decode_token(token)
        records, more = self.tasks.page(
            user_id, flt, after, page_size(self.limits, size), full, descending=descending
        )
        next_token = encode_token(records[-1].id) if more and records else None
        return Page(records, token, next_token)

    def search(self, user_id: int, flt: Filter | None, size: int | None) -> list[TaskRecord]:
        limit = size if size and size > 0 else self.limits.page_max
        records, _ = self.tasks.page(user_id, flt, 0, min(limit, self.limits.page_max), True)
        return records

    def iterate(
        self, user_id: int, flt: Filter | None, full: bool, job_id: int | None = None
    ) -> Iterator[TaskRecord]:
        """Every matching task (of one job, if given), fetched a page at a time (for the
        unpaginated list endpoints)."""
        return every_page(lambda after: self.tasks.page(user_id, flt, after, 500, full, job_id))

    def counts(self, user_id: int) -> Counts:
        return self.tasks.counts(user_id)

    def output(
        self,
        user_id: int,
        key: str,
        stream: int,
        instance_id: int | None,
        fresh: bool,
        tail: int | None = None,
    ) -> str:
        task = self.tasks.get(user_id, key) if instance_id is not None else None
        task_id = task.id if task else self.tasks.id_of(user_id, key)
        if task is not None and instance_id not in {i.instance_id for i in task.instances}:
            raise NotFound(f"instance {instance_id} of task {key!r} not found")
        return read_output(self.logs, task_id, stream, instance_id, fresh, tail)


def read_output(
    logs: LogStore,
    task_id: int,
    stream: int,
    instance_id: int | None,
    fresh: bool,
    tail: int | None,
) -> str:
    """Everything, what is new since the last fresh read, or the last ``tail`` characters."""
    if fresh:
        chunks = logs.read_fresh(task_id, stream, instance_id)
    elif tail is not None:
        chunks = logs.read_tail(task_id, stream, instance_id, tail)
    else:
        chunks = logs.read(task_id, stream, instance_id)
    text = render(chunks, prefixed=instance_id is None)
    return text[-tail:] if tail is not None and not fresh else text


def render(chunks: list[Chunk], prefixed: bool) -> str:
    """Task-level output prefixes each line with ``<instanceId>> `` (node docs)."""
    if not prefixed:
        return "".join(c.data for c in chunks)
    out: list[str] = []
    for c in chunks:
        prefix = f"{c.instance_id}> "
        out.extend(prefix + line for line in c.data.splitlines(keepends=True))
    return "".join(out)
