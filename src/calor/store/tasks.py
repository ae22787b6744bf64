"""Task reads and writes for the API: submit, look up, page, search, count, abort, delete."""

import uuid as uuidlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import DataError, IntegrityError

from calor.domain.dependencies import DependencyState
from calor.domain.errors import BadRequest, CalorError, Conflict, Forbidden, NotFound
from calor.domain.filters import Filter
from calor.domain.pool import FINAL_POOL_STATES
from calor.domain.states import (
    ACTIVE_INSTANCE_STATES,
    FINAL_TASK_STATES,
    PENDING_INSTANCE_STATES,
    InstanceState,
    JobState,
    TaskState,
)
from calor.domain.task import TaskRecord, TaskSpec
from calor.store.engine import Database
from calor.store.filter_sql import to_sql
from calor.store.keys import id_by_key
from calor.store.records import load_instances, load_tags, recompute, task_record
from calor.store.settle import NOT_FINAL, load_dependencies, settle, settle_dependants
from calor.store.tables import (
    instances,
    jobs,
    pools,
    task_dependencies,
    task_tags,
    tasks,
    users,
)

_FINAL = [s.value for s in FINAL_TASK_STATES]
_ACTIVE_INSTANCES = [s.value for s in ACTIVE_INSTANCE_STATES]
_PENDING_INSTANCES = [s.value for s in PENDING_INSTANCE_STATES]
_ENDED_POOL = {s.value for s in FINAL_POOL_STATES}


@dataclass(frozen=True)
class Counts:
    task_count: int
    running_task_count: int
    running_instance_count: int
    running_core_count: int


def task_id_of(conn: Connection, user_id: int, key: str) -> int:
    """The id of the user's task with this uuid or shortname (never a pool's slot task)."""
    return id_by_key(conn, tasks, user_id, key, "task", tasks.c.slots_of.is_(None))


def executing_rows(conn: Connection, task_ids: list[int]) -> dict[int, list[int]]:
    """Row ids of these tasks' instances that are running their command, by task id."""
    found: dict[int, list[int]] = {}
    for row_id, task_id in conn.execute(
        select(instances.c.id, instances.c.task_id).where(
            instances.c.task_id.in_(task_ids),
            instances.c.state == InstanceState.EXECUTING.value,
        )
    ):
        found.setdefault(task_id, []).append(row_id)
    return found


def new_task_row(now: datetime, **fields: Any) -> dict[str, Any]:
    """A tasks row as submitted: nothing run, nothing counted; ``fields`` say the rest."""
    return {
        "state": TaskState.SUBMITTED.value,
        "previous_state": TaskState.SUBMITTED.value,
        "creation_date": now,
        "state_transition_time": now,
        "previous_state_transition_time": now,
        "last_modified": now,
        "end_date": None,
        "cancel_requested": False,
        "progress": 0.0,
        "running_instance_count": 0,
        "running_core_count": 0,
        "execution_time_sec": 0.0,
        "wall_time_sec": 0.0,
        "results_count": 0,
        "retries_used": 0,
        "errors": [],
        **fields,
    }


def new_instance_rows(
    task_id: int, instance_ids: Iterable[int], state: InstanceState
) -> list[dict[str, Any]]:
    return [
        {
            "task_id": task_id,
            "instance_id": iid,
            "state": state.value,
            "attempts": 0,
            "progress": 0.0,
            "wall_time_sec": 0.0,
            "cpu_time_sec": 0.0,
            "peak_memory_mb": 0,
        }
        for iid in instance_ids
    ]


def abort_task(conn: Connection, task_id: int, now: datetime) -> list[int]:
    """Mark the task cancelled; instances not yet handed to an executor end now, active ones
    are returned to kill."""
    state = conn.execute(select(tasks.c.state).where(tasks.c.id == task_id)).scalar()
    if state is None or state in _FINAL:  # gone (deleted meanwhile) or already ended
        return []
    conn.execute(update(tasks).where(tasks.c.id == task_id).values(cancel_requested=True))
    conn.execute(
        update(instances)
        .where(instances.c.task_id == task_id, instances.c.state.in_(_PENDING_INSTANCES))
        .values(state=InstanceState.CANCELLED.value, ended_at=now)
    )
    active = list(
        conn.execute(
            select(instances.c.id).where(
                instances.c.task_id == task_id, instances.c.state.in_(_ACTIVE_INSTANCES)
            )
        ).scalars()
    )
    recompute(conn, [task_id], now)
    return active


def delete_tasks(conn: Connection, user_id: int, task_ids: list[int], now: datetime) -> list[int]:
    """Abort (if running), then delete these tasks of the user; returns instances to kill."""
    active: list[int] = []
    for task_id in task_ids:
        active += abort_task(conn, task_id, now)
    if task_ids:
        gone = conn.execute(
            delete(tasks).where(tasks.c.id.in_(task_ids), tasks.c.user_id == user_id)
        ).rowcount
        conn.execute(
            update(users).where(users.c.id == user_id).values(task_count=users.c.task_count - gone)
        )
        # a task deleted before it ended leaves its dependants waiting on nothing
        recompute(conn, settle_dependants(conn, task_ids, now), now)
    return active


def _pool_of(key: str | None, found: dict[str, Any]) -> Any:
    """The pool a task runs on (its own poolUuid, else its job's), if any."""
    if not key:
        return None
    pool = found.get("pool:" + key)
    if pool is None:
        raise NotFound(f"pool {key!r} not found")
    if pool.closing or pool.state in _ENDED_POOL:
        state = "Closing" if pool.closing and pool.state not in _ENDED_POOL else pool.state
        raise Forbidden(f"pool {key!r} is {state}: it takes no new tasks")
    return pool


def _check_links(
    spec: TaskSpec, job_of: dict[str, Any], task_of: dict[str, Any]
) -> tuple[Any, list[tuple[int, str]]]:
    """The spec's job row and its dependencies' (task id, uuid); why not, as an exception."""
    job = None
    if spec.job_uuid:
        job = job_of.get(spec.job_uuid)
        if job is None:
            raise NotFound(f"job {spec.job_uuid!r} not found")
        if job.state != JobState.ACTIVE.value:
            raise Forbidden(f"job {spec.job_uuid!r} is {job.state}: it takes no new tasks")
    if not spec.dependencies:
        return job, []
    if job is None or not job.use_dependencies:
        raise BadRequest(
            "dependencies need the task to be in a job created with useDependencies=true"
        )
    deps: list[tuple[int, str]] = []
    for dep in spec.dependencies:
        found = task_of.get(dep.task_uuid)
        if found is None or found.job_id != job.id:
            raise NotFound(f"dependency task {dep.task_uuid} not found in job {job.uuid}")
        deps.append((found.id, found.uuid))
    return job, deps


class TaskStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writes ---------------------------------------------------------------------------

    def insert(
        self, user_id: int, specs: Sequence[TaskSpec], now: datetime, max_tasks: int
    ) -> list[str | CalorError]:
        """Insert tasks in one transaction; per-item conflicts are returned, not raised.

        Raises Forbidden, inserting nothing, when the user would own more than max_tasks.
        """
        for _ in range(2):
            try:
                return self._insert(user_id, specs, now, max_tasks)
            except IntegrityError:
                # a concurrent submission took a shortname between our check and our insert;
                # the next attempt sees it committed and reports it as that item's conflict
                continue
        return self._insert(user_id, specs, now, max_tasks)

    def _insert(
        self, user_id: int, specs: Sequence[TaskSpec], now: datetime, max_tasks: int
    ) -> list[str | CalorError]:
        results: list[str | CalorError] = []
        wanted = [s.shortname for s in specs if s.shortname]
        rows: list[dict[str, Any]] = []
        kept: list[TaskSpec] = []
        with self.db.write() as conn:
            taken: set[str] = set()
            if wanted:
                taken = set(
                    conn.execute(
                        select(tasks.c.shortname).where(
                            tasks.c.user_id == user_id, tasks.c.shortname.in_(set(wanted))
                        )
                    ).scalars()
                )
            job_of, task_of = self._links(conn, user_id, specs)
            links: list[tuple[int | None, list[tuple[int, str]]]] = []
            for spec in specs:
                if spec.shortname and spec.shortname in taken:
                    results.append(Conflict(f"shortname {spec.shortname!r} is already used"))
                    continue
                try:
                    job, deps = _check_links(spec, job_of, task_of)
                    # a task on a pool runs with the pool's profile, on one of its slots
                    pool = _pool_of(spec.pool_uuid or (job.pool_uuid if job else None), job_of)
                except CalorError as exc:
                    results.append(exc)
                    continue
                links.append((job.id if job else None, deps))
                task_uuid = str(uuidlib.uuid4())
                shortname = spec.shortname or task_uuid
                taken.add(shortname)
                results.append(task_uuid)
                kept.append(spec)
                rows.append(
                    new_task_row(
                        now,
                        uuid=task_uuid,
                        user_id=user_id,
                        name=spec.name,
                        shortname=shortname,
                        profile=pool.profile if pool else spec.profile,
                        pool_uuid=pool.uuid if pool else None,
                        pool_id=pool.id if pool else None,
                        job_uuid=job.uuid if job else None,
                        project_uuid=spec.project_uuid,
                        result_bucket=spec.result_bucket,
                        instance_count=len(spec.instance_ids),
                        advanced_ranges=spec.advanced_ranges,
                        cores=pool.cores if pool else spec.cores,
                        max_per_instance_retries=spec.max_per_instance_retries,
                        max_total_retries=spec.max_total_retries,
                        document=spec.document,
                        job_id=job.id if job else None,
                        dependency_state=DependencyState.WAITING.value if deps else None,
                        max_queue_sec=spec.max_queue_sec or None,
                        queue_due=(
                            now + timedelta(seconds=spec.max_queue_sec)
                            if spec.max_queue_sec and not deps
                            else None
                        ),
                        completion_ttl_sec=spec.completion_ttl_sec,
                    )
                )
            if not rows:
                return results
            # one conditional UPDATE: the check and the reservation are atomic, so concurrent
            # submissions cannot overshoot the limit between them
            reserved = conn.execute(
                update(users)
                .where(users.c.id == user_id, users.c.task_count + len(rows) <= max_tasks)
                .values(task_count=users.c.task_count + len(rows))
            ).rowcount
            if not reserved:
                raise Forbidden(
                    f"maximum number of tasks reached ({max_tasks}); "
                    "delete finished tasks to submit more"
                )
            ids = (
                conn.execute(
                    insert(tasks).returning(tasks.c.id, sort_by_parameter_order=True), rows
                )
                .scalars()
                .all()
            )
            tag_rows = [
                {"task_id": tid, "tag": tag, "user_id": user_id}
                for tid, spec in zip(ids, kept, strict=True)
                for tag in dict.fromkeys(spec.tags)
            ]
            if tag_rows:
                conn.execute(insert(task_tags), tag_rows)
            dep_rows = [
                {
                    "task_id": tid,
                    "depends_on_id": dep_id,
                    "depends_on_uuid": dep.task_uuid,
                    "conditions": list(dep.conditions) if dep.conditions else None,
                    "advanced": dep.advanced,
                    "position": position,
                }
                for tid, spec, (_, deps) in zip(ids, kept, links, strict=True)
                for position, (dep, (dep_id, _)) in enumerate(
                    zip(spec.dependencies, deps, strict=True)
                )
            ]
            if dep_rows:
                conn.execute(insert(task_dependencies), dep_rows)
            conn.execute(
                insert(instances),
                [
                    row
                    for tid, spec in zip(ids, kept, strict=True)
                    for row in new_instance_rows(
                        tid,
                        spec.instance_ids,
                        InstanceState.WAITING if spec.dependencies else InstanceState.QUEUED,
                    )
                ],
            )
            # dependencies that have already ended decide at once
            waiting = [tid for tid, spec in zip(ids, kept, strict=True) if spec.dependencies]
            if waiting:
                recompute(conn, settle(conn, waiting, now), now)
        return results

    @staticmethod
    def _links(
        conn: Connection, user_id: int, specs: Sequence[TaskSpec]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The user's jobs (by uuid or shortname), pools (their own, or their jobs'; keys
        "pool:<uuid or shortname>") and dependency tasks that these specs name."""
        job_keys = {s.job_uuid for s in specs if s.job_uuid}
        pool_keys = {s.pool_uuid for s in specs if s.pool_uuid}
        dep_uuids = {d.task_uuid for s in specs for d in s.dependencies}
        job_of: dict[str, Any] = {}
        task_of: dict[str, Any] = {}
        if job_keys:
            for job in conn.execute(
                select(
                    jobs.c.id,
                    jobs.c.uuid,
                    jobs.c.shortname,
                    jobs.c.state,
                    jobs.c.use_dependencies,
                    jobs.c.pool_uuid,
                ).where(
                    jobs.c.user_id == user_id,
                    or_(jobs.c.uuid.in_(job_keys), jobs.c.shortname.in_(job_keys)),
                )
            ):
                job_of.setdefault(job.uuid, job)
                job_of.setdefault(job.shortname, job)
        pool_keys |= {j.pool_uuid for j in job_of.values() if j.pool_uuid}
        if pool_keys:
            for pool in conn.execute(
                select(
                    pools.c.id,
                    pools.c.uuid,
                    pools.c.shortname,
                    pools.c.state,
                    pools.c.closing,
                    pools.c.profile,
                    pools.c.cores,
                ).where(
                    pools.c.user_id == user_id,
                    or_(pools.c.uuid.in_(pool_keys), pools.c.shortname.in_(pool_keys)),
                )
            ):
                job_of.setdefault("pool:" + pool.uuid, pool)
                job_of.setdefault("pool:" + pool.shortname, pool)
        if dep_uuids:
            for task in conn.execute(
                select(tasks.c.id, tasks.c.uuid, tasks.c.job_id).where(
                    tasks.c.user_id == user_id,
                    tasks.c.uuid.in_(dep_uuids),
                    tasks.c.slots_of.is_(None),
                )
            ):
                task_of[task.uuid] = task
        return job_of, task_of

    def replace_document(self, user_id: int, key: str, spec: TaskSpec, now: datetime) -> None:
        """PUT /tasks/{uuid}: update what can change after submission (name, tags, metadata)."""
        with self.db.write() as conn:
            task_id = self._id(conn, user_id, key)
            conn.execute(
                update(tasks)
                .where(tasks.c.id == task_id)
                .values(name=spec.name, document=spec.document, last_modified=now)
            )
            conn.execute(delete(task_tags).where(task_tags.c.task_id == task_id))
            if spec.tags:
                conn.execute(
                    insert(task_tags),
                    [
                        {"task_id": task_id, "tag": t, "user_id": user_id}
                        for t in dict.fromkeys(spec.tags)
                    ],
                )

    def request_abort(self, user_id: int, key: str, now: datetime) -> list[int]:
        """Mark the task cancelled; pending instances end now, active ones are returned to kill."""
        with self.db.write() as conn:
            return abort_task(conn, self._id(conn, user_id, key), now)

    def executing(self, user_id: int, key: str) -> list[int]:
        with self.db.read() as conn:
            task_id = self._id(conn, user_id, key)
            return executing_rows(conn, [task_id]).get(task_id, [])

    def delete(self, user_id: int, key: str, now: datetime) -> list[int]:
        """Abort if running, then delete the task; returns the instances still to kill."""
        with self.db.write() as conn:
            return delete_tasks(conn, user_id, [self._id(conn, user_id, key)], now)

    # -- reads ----------------------------------------------------------------------------

    def _id(self, conn: Connection, user_id: int, key: str) -> int:
        return task_id_of(conn, user_id, key)

    def get(self, user_id: int, key: str) -> TaskRecord:
        with self.db.read() as conn:
            task_id = self._id(conn, user_id, key)
            row = conn.execute(select(tasks).where(tasks.c.id == task_id)).one()
            return task_record(
                row,
                load_tags(conn, [task_id])[task_id],
                load_instances(conn, [task_id])[task_id],
                load_dependencies(conn, [task_id]).get(task_id),
            )

    def id_of(self, user_id: int, key: str) -> int:
        with self.db.read() as conn:
            return self._id(conn, user_id, key)

    def page(
        self,
        user_id: int,
        flt: Filter | None,
        after_id: int,
        limit: int,
        full: bool,
        job_id: int | None = None,
        descending: bool = False,
    ) -> tuple[list[TaskRecord], bool]:
        """Up to ``limit`` tasks (of one job, if given) after ``after_id`` in id (creation)
        order, or before it newest first (``descending``; 0: from the newest), and if more
        exist."""
        # a pool's slot task is never listed
        where = [tasks.c.user_id == user_id, tasks.c.slots_of.is_(None)]
        if not descending:
            where.append(tasks.c.id > after_id)
        elif after_id:
            where.append(tasks.c.id < after_id)
        if job_id is not None:
            where.append(tasks.c.job_id == job_id)
        if flt is not None:
            where.append(to_sql(flt))
        with self.db.read() as conn:
            try:
                order = tasks.c.id.desc() if descending else tasks.c.id
                rows = conn.execute(
                    select(tasks).where(and_(*where)).order_by(order).limit(limit + 1)
                ).all()
            except DataError as exc:  # e.g. a Like regex in a syntax PostgreSQL lacks
                raise BadRequest(
                    f"the filter cannot be evaluated ({exc.orig}); check the Like regex"
                ) from None
            more = len(rows) > limit
            rows = rows[:limit]
            ids = [r.id for r in rows]
            if not full:
                return [task_record(r) for r in rows], more
            tags = load_tags(conn, ids)
            insts = load_instances(conn, ids)
            deps = load_dependencies(conn, [r.id for r in rows if r.dependency_state])
            return [task_record(r, tags[r.id], insts[r.id], deps.get(r.id)) for r in rows], more

    def counts(self, user_id: int) -> Counts:
        with self.db.read() as conn:
            total = conn.execute(
                select(users.c.task_count).where(users.c.id == user_id)
            ).scalar_one()
            running = conn.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(tasks.c.running_instance_count), 0),
                    func.coalesce(func.sum(tasks.c.running_core_count), 0),
                ).where(
                    tasks.c.user_id == user_id,
                    tasks.c.state.in_(NOT_FINAL),
                    tasks.c.slots_of.is_(None),
                )
            ).one()
        return Counts(int(total), int(running[0]), int(running[1]), int(running[2]))
