"""Task reads and writes for the API: submit, look up, page, search, count, abort, delete."""

import uuid as uuidlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, update
from sqlalchemy.exc import DataError, IntegrityError

from calor.domain.errors import BadRequest, CalorError, Conflict, Forbidden, NotFound
from calor.domain.filters import Filter
from calor.domain.states import (
    ACTIVE_INSTANCE_STATES,
    FINAL_TASK_STATES,
    InstanceState,
    TaskState,
)
from calor.domain.task import TaskRecord, TaskSpec
from calor.store.engine import Database
from calor.store.filter_sql import to_sql
from calor.store.records import load_instances, load_tags, recompute, task_record
from calor.store.tables import instances, task_tags, tasks, users

_FINAL = [s.value for s in FINAL_TASK_STATES]
# the non-final states as an IN list: a range on ix_tasks_user_state_id, where NOT IN scans
_NOT_FINAL = [s.value for s in TaskState if s not in FINAL_TASK_STATES]
_ACTIVE_INSTANCES = [s.value for s in ACTIVE_INSTANCE_STATES]


@dataclass(frozen=True)
class Counts:
    task_count: int
    running_task_count: int
    running_instance_count: int
    running_core_count: int


def task_id_of(conn: Connection, user_id: int, key: str) -> int:
    """The id of the user's task with this uuid or shortname; NotFound otherwise."""
    if "\x00" in key:  # no task has one, and PostgreSQL rejects it in a query
        raise NotFound(f"task {key!r} not found")
    found = conn.execute(
        select(tasks.c.id).where(tasks.c.user_id == user_id, tasks.c.uuid == key)
    ).scalar()
    if found is None:
        found = conn.execute(
            select(tasks.c.id).where(tasks.c.user_id == user_id, tasks.c.shortname == key)
        ).scalar()
    if found is None:
        raise NotFound(f"task {key!r} not found")
    return int(found)


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
            for spec in specs:
                if spec.shortname and spec.shortname in taken:
                    results.append(Conflict(f"shortname {spec.shortname!r} is already used"))
                    continue
                task_uuid = str(uuidlib.uuid4())
                shortname = spec.shortname or task_uuid
                taken.add(shortname)
                results.append(task_uuid)
                kept.append(spec)
                rows.append(
                    {
                        "uuid": task_uuid,
                        "user_id": user_id,
                        "name": spec.name,
                        "shortname": shortname,
                        "profile": spec.profile,
                        "pool_uuid": spec.pool_uuid,
                        "job_uuid": spec.job_uuid,
                        "project_uuid": spec.project_uuid,
                        "result_bucket": spec.result_bucket,
                        "state": TaskState.SUBMITTED.value,
                        "previous_state": TaskState.SUBMITTED.value,
                        "creation_date": now,
                        "state_transition_time": now,
                        "previous_state_transition_time": now,
                        "last_modified": now,
                        "end_date": None,
                        "instance_count": len(spec.instance_ids),
                        "advanced_ranges": spec.advanced_ranges,
                        "cores": spec.cores,
                        "cancel_requested": False,
                        "progress": 0.0,
                        "running_instance_count": 0,
                        "running_core_count": 0,
                        "execution_time_sec": 0.0,
                        "wall_time_sec": 0.0,
                        "results_count": 0,
                        "retries_used": 0,
                        "max_per_instance_retries": spec.max_per_instance_retries,
                        "max_total_retries": spec.max_total_retries,
                        "errors": [],
                        "document": spec.document,
                    }
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
            conn.execute(
                insert(instances),
                [
                    {
                        "task_id": tid,
                        "instance_id": iid,
                        "state": InstanceState.QUEUED.value,
                        "attempts": 0,
                        "progress": 0.0,
                        "wall_time_sec": 0.0,
                        "cpu_time_sec": 0.0,
                        "peak_memory_mb": 0,
                    }
                    for tid, spec in zip(ids, kept, strict=True)
                    for iid in spec.instance_ids
                ],
            )
        return results

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
        """Mark the task cancelled; queued instances end now, active ones are returned to kill."""
        with self.db.write() as conn:
            task_id = self._id(conn, user_id, key)
            return self._abort(conn, task_id, now)

    def _abort(self, conn: Connection, task_id: int, now: datetime) -> list[int]:
        state = conn.execute(select(tasks.c.state).where(tasks.c.id == task_id)).scalar_one()
        if state in _FINAL:
            return []
        conn.execute(update(tasks).where(tasks.c.id == task_id).values(cancel_requested=True))
        conn.execute(
            update(instances)
            .where(
                instances.c.task_id == task_id,
                instances.c.state == InstanceState.QUEUED.value,
            )
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

    def executing(self, user_id: int, key: str) -> list[int]:
        with self.db.read() as conn:
            task_id = self._id(conn, user_id, key)
            return executing_rows(conn, [task_id]).get(task_id, [])

    def delete(self, user_id: int, key: str, now: datetime) -> list[int]:
        """Abort if running, then delete the task; returns the instances still to kill."""
        with self.db.write() as conn:
            task_id = self._id(conn, user_id, key)
            active = self._abort(conn, task_id, now)
            conn.execute(delete(tasks).where(tasks.c.id == task_id))
            conn.execute(
                update(users).where(users.c.id == user_id).values(task_count=users.c.task_count - 1)
            )
            return active

    # -- reads ----------------------------------------------------------------------------

    def _id(self, conn: Connection, user_id: int, key: str) -> int:
        return task_id_of(conn, user_id, key)

    def get(self, user_id: int, key: str) -> TaskRecord:
        with self.db.read() as conn:
            task_id = self._id(conn, user_id, key)
            row = conn.execute(select(tasks).where(tasks.c.id == task_id)).one()
            return task_record(
                row, load_tags(conn, [task_id])[task_id], load_instances(conn, [task_id])[task_id]
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
    ) -> tuple[list[TaskRecord], bool]:
        """Up to ``limit`` tasks after ``after_id`` in id (creation) order, and if more exist."""
        where = [tasks.c.user_id == user_id, tasks.c.id > after_id]
        if flt is not None:
            where.append(to_sql(flt))
        with self.db.read() as conn:
            try:
                rows = conn.execute(
                    select(tasks).where(and_(*where)).order_by(tasks.c.id).limit(limit + 1)
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
            return [task_record(r, tags[r.id], insts[r.id]) for r in rows], more

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
                    tasks.c.state.in_(_NOT_FINAL),
                )
            ).one()
        return Counts(int(total), int(running[0]), int(running[1]), int(running[2]))
