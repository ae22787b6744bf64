"""Job reads and writes: create, look up, page, terminate, delete (contract §2.4, §6)."""

import uuid as uuidlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, insert, or_, select
from sqlalchemy.exc import DataError, IntegrityError

from calor.domain.errors import BadRequest, Conflict, Forbidden, NotFound
from calor.domain.filters import Filter
from calor.domain.job import JobRecord, JobSpec
from calor.domain.states import JobState
from calor.store.engine import Database
from calor.store.filter_sql import JOBS, to_sql
from calor.store.keys import check_room, id_by_key, tags_by_owner
from calor.store.settle import (
    CANCELLED_CODE,
    NOT_FINAL,
    append_error,
    complete_jobs,
    count_not_final,
    set_job_state,
)
from calor.store.tables import job_tags, jobs, pools, tasks
from calor.store.tasks import abort_task, delete_tasks


def job_record(row: Row[Any], tags: list[str] | None = None) -> JobRecord:
    return JobRecord(
        id=row.id,
        uuid=row.uuid,
        name=row.name,
        shortname=row.shortname,
        pool_uuid=row.pool_uuid,
        state=JobState(row.state),
        previous_state=JobState(row.previous_state),
        creation_date=row.creation_date,
        state_transition_time=row.state_transition_time,
        previous_state_transition_time=row.previous_state_transition_time,
        last_modified=row.last_modified,
        end_date=row.end_date,
        use_dependencies=row.use_dependencies,
        document=dict(row.document or {}),
        tags=tags or [],
    )


def _tags(conn: Connection, job_ids: list[int]) -> dict[int, list[str]]:
    return tags_by_owner(conn, job_tags.c.job_id, job_tags.c.tag, job_ids)


def job_id_of(conn: Connection, user_id: int, key: str) -> int:
    return id_by_key(conn, jobs, user_id, key, "job")


def pools_uuid(conn: Connection, user_id: int, key: str) -> str:
    found = conn.execute(
        select(pools.c.uuid).where(
            pools.c.user_id == user_id, or_(pools.c.uuid == key, pools.c.shortname == key)
        )
    ).scalar()
    if found is None:
        raise NotFound(f"pool {key!r} not found")
    return str(found)


def terminate_job(conn: Connection, job_id: int, now: datetime, reason: str) -> list[int]:
    """Abort what is left of an active job; it completes when its last task has ended.
    Returns the instances to kill. Terminating a job that is not active changes nothing."""
    state = conn.execute(select(jobs.c.state).where(jobs.c.id == job_id)).scalar()
    if state != JobState.ACTIVE.value:
        return []
    set_job_state(conn, job_id, JobState.TERMINATING, now, wall_due=None)
    active: list[int] = []
    for task_id in conn.execute(
        select(tasks.c.id).where(tasks.c.job_id == job_id, tasks.c.state.in_(NOT_FINAL))
    ).scalars():
        append_error(conn, task_id, CANCELLED_CODE, f"The task was cancelled: {reason}")
        active += abort_task(conn, task_id, now)
    complete_jobs(conn, [job_id], now)
    return active


def delete_job(conn: Connection, user_id: int, job_id: int, now: datetime) -> list[int]:
    """Delete a job and its tasks (aborting those still running); returns instances to kill."""
    task_ids = list(conn.execute(select(tasks.c.id).where(tasks.c.job_id == job_id)).scalars())
    active = delete_tasks(conn, user_id, task_ids, now)
    conn.execute(delete(jobs).where(jobs.c.id == job_id))
    return active


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, user_id: int, spec: JobSpec, now: datetime, max_jobs: int) -> str:
        job_uuid = str(uuidlib.uuid4())
        row = {
            "uuid": job_uuid,
            "user_id": user_id,
            "name": spec.name,
            "shortname": spec.shortname or job_uuid,
            "pool_uuid": spec.pool_uuid,
            "state": JobState.ACTIVE.value,
            "previous_state": JobState.ACTIVE.value,
            "creation_date": now,
            "state_transition_time": now,
            "previous_state_transition_time": now,
            "last_modified": now,
            "end_date": None,
            "use_dependencies": spec.use_dependencies,
            "wall_due": (
                now + timedelta(seconds=spec.max_wall_time_sec) if spec.max_wall_time_sec else None
            ),
            "completion_ttl_sec": spec.completion_ttl_sec if spec.auto_delete else None,
            "delete_due": None,
            "document": spec.document,
        }
        try:
            with self.db.write() as conn:
                check_room(conn, jobs, user_id, max_jobs, "job")
                if spec.pool_uuid:  # its tasks run on this pool unless they name another
                    row["pool_uuid"] = pools_uuid(conn, user_id, spec.pool_uuid)
                job_id = conn.execute(insert(jobs).returning(jobs.c.id), row).scalar_one()
                if spec.tags:
                    conn.execute(
                        insert(job_tags),
                        [
                            {"job_id": job_id, "tag": t, "user_id": user_id}
                            for t in dict.fromkeys(spec.tags)
                        ],
                    )
        except IntegrityError:
            raise Conflict(f"shortname {spec.shortname!r} is already used by a job") from None
        return job_uuid

    def get(self, user_id: int, key: str) -> JobRecord:
        with self.db.read() as conn:
            job_id = job_id_of(conn, user_id, key)
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).one()
            return job_record(row, _tags(conn, [job_id])[job_id])

    def id_of(self, user_id: int, key: str) -> int:
        with self.db.read() as conn:
            return job_id_of(conn, user_id, key)

    def page(
        self, user_id: int, flt: Filter | None, after_id: int, limit: int
    ) -> tuple[list[JobRecord], bool]:
        """Up to ``limit`` jobs after ``after_id`` in creation order, and whether more exist."""
        where = [jobs.c.user_id == user_id, jobs.c.id > after_id]
        if flt is not None:
            where.append(to_sql(flt, JOBS))
        with self.db.read() as conn:
            try:
                rows = conn.execute(
                    select(jobs).where(and_(*where)).order_by(jobs.c.id).limit(limit + 1)
                ).all()
            except DataError as exc:
                raise BadRequest(
                    f"the filter cannot be evaluated ({exc.orig}); check the Like regex"
                ) from None
            more = len(rows) > limit
            rows = rows[:limit]
            tags = _tags(conn, [r.id for r in rows])
            return [job_record(r, tags[r.id]) for r in rows], more

    def terminate(self, user_id: int, key: str, now: datetime) -> list[int]:
        with self.db.write() as conn:
            job_id = job_id_of(conn, user_id, key)
            return terminate_job(conn, job_id, now, "its job was terminated")

    def delete(self, user_id: int, key: str, force: bool, now: datetime) -> list[int]:
        with self.db.write() as conn:
            job_id = job_id_of(conn, user_id, key)
            running = count_not_final(conn, job_id)
            if running and not force:
                raise Forbidden(
                    f"job {key!r} still has {running} unfinished task(s); terminate it first, "
                    "or delete it with force=True to abort them"
                )
            return delete_job(conn, user_id, job_id, now)
