"""What follows when tasks end: the tasks that wait on them settle, terminating jobs complete.

Runs in the transaction that ended the tasks (records.recompute), so a dependant is released
or cancelled in the same commit as the end it waited for: no crash between the two can leave
it waiting forever.
"""

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, exists, func, select, update

from calor.domain.dependencies import Dependency, DependencyState, evaluate, make_dependency
from calor.domain.pool import FINAL_POOL_STATES, derive_pool_state
from calor.domain.states import (
    FINAL_TASK_STATES,
    InstanceState,
    JobState,
    TaskState,
)
from calor.store.tables import instances, jobs, pools, task_dependencies, tasks

# the code of the error a task gets when it is cancelled without running
CANCELLED_CODE = "CALOR-CANCELLED"

# the unfinished task states as an IN list: a range on an index, where NOT IN scans
NOT_FINAL = [s.value for s in TaskState if s not in FINAL_TASK_STATES]

_DEPENDENCIES = (
    select(
        task_dependencies.c.task_id,
        task_dependencies.c.depends_on_uuid,
        task_dependencies.c.conditions,
        task_dependencies.c.advanced,
        tasks.c.state,
    )
    .outerjoin(tasks, tasks.c.id == task_dependencies.c.depends_on_id)
    .where(task_dependencies.c.task_id.in_(bindparam("task_ids", expanding=True)))
    .order_by(task_dependencies.c.task_id, task_dependencies.c.position)
)
_WAITING_DEPENDANTS = (
    select(task_dependencies.c.task_id)
    .join(tasks, tasks.c.id == task_dependencies.c.task_id)
    .where(
        task_dependencies.c.depends_on_id.in_(bindparam("task_ids", expanding=True)),
        tasks.c.dependency_state == DependencyState.WAITING.value,
    )
    .distinct()
)


def load_dependencies(
    conn: Connection, task_ids: Collection[int]
) -> dict[int, list[tuple[Dependency, TaskState | None, bool]]]:
    """Each task's dependencies, with their tasks' states and whether they still exist."""
    out: dict[int, list[tuple[Dependency, TaskState | None, bool]]] = {}
    if not task_ids:
        return out
    for row in conn.execute(_DEPENDENCIES, {"task_ids": list(task_ids)}):
        dep = make_dependency(row.depends_on_uuid, row.conditions, row.advanced)
        state = TaskState(row.state) if row.state is not None else None
        out.setdefault(row.task_id, []).append((dep, state, row.state is not None))
    return out


def append_error(conn: Connection, task_id: int, code: str, message: str) -> None:
    errors = conn.execute(select(tasks.c.errors).where(tasks.c.id == task_id)).scalar_one()
    conn.execute(
        update(tasks)
        .where(tasks.c.id == task_id)
        .values(errors=[*(errors or []), {"code": code, "message": message, "debug": ""}])
    )


def settle(conn: Connection, task_ids: Collection[int], now: datetime) -> set[int]:
    """Release (→ Queued) or cancel the waiting instances of those of these tasks whose
    dependencies are decided; returns the tasks whose instances changed."""
    changed: set[int] = set()
    for task_id, entries in load_dependencies(conn, task_ids).items():
        verdict = evaluate(entries)
        if verdict.state is DependencyState.WAITING:
            continue
        if verdict.state is DependencyState.FULFILLED:
            new_state = InstanceState.QUEUED
            ended_at = None
            limit = conn.execute(
                select(tasks.c.max_queue_sec).where(tasks.c.id == task_id)
            ).scalar_one()
            extra: dict[str, Any] = {"queue_due": now + timedelta(seconds=limit) if limit else None}
        else:
            new_state, ended_at, extra = InstanceState.CANCELLED, now, {}
            append_error(
                conn,
                task_id,
                CANCELLED_CODE,
                f"The task was cancelled: its dependencies can no longer be met: {verdict.reason}",
            )
        conn.execute(
            update(tasks)
            .where(tasks.c.id == task_id)
            .values(dependency_state=verdict.state.value, last_modified=now, **extra)
        )
        conn.execute(
            update(instances)
            .where(
                instances.c.task_id == task_id,
                instances.c.state == InstanceState.WAITING.value,
            )
            .values(state=new_state.value, ended_at=ended_at)
        )
        changed.add(task_id)
    return changed


def complete_jobs(conn: Connection, job_ids: Collection[int], now: datetime) -> None:
    """Terminating jobs with no task left running become Completed."""
    if not job_ids:
        return
    running = (
        exists().where(tasks.c.job_id == jobs.c.id, tasks.c.state.in_(NOT_FINAL)).correlate(jobs)
    )
    for row in conn.execute(
        select(jobs.c.id, jobs.c.completion_ttl_sec).where(
            jobs.c.id.in_(list(job_ids)),
            jobs.c.state == JobState.TERMINATING.value,
            ~running,
        )
    ):
        ttl = row.completion_ttl_sec
        set_job_state(
            conn,
            row.id,
            JobState.COMPLETED,
            now,
            end_date=now,
            delete_due=now + timedelta(seconds=ttl) if ttl is not None else None,
        )


def set_job_state(
    conn: Connection, job_id: int, new: JobState, now: datetime, **values: Any
) -> None:
    """Move a job to ``new``, keeping previousState and the transition times (contract §3.2)."""
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.state != new.value)
        .values(
            previous_state=jobs.c.state,
            previous_state_transition_time=jobs.c.state_transition_time,
            state=new.value,
            state_transition_time=now,
            last_modified=now,
            **values,
        )
    )


def after_end(conn: Connection, ended: Mapping[int, int | None], now: datetime) -> set[int]:
    """``ended``: tasks that just reached a final state, with their job ids. Their waiting
    dependants settle and their jobs may complete; returns the tasks to recompute next."""
    in_jobs = [t for t, j in ended.items() if j is not None]
    if not in_jobs:
        return set()  # only a task of a job can have dependants (TaskStore.insert)
    changed = settle_dependants(conn, in_jobs, now)
    complete_jobs(conn, {j for j in ended.values() if j is not None}, now)
    return changed


def settle_dependants(conn: Connection, task_ids: Collection[int], now: datetime) -> set[int]:
    """Settle the tasks waiting on these (which ended, or are gone); returns those that
    changed."""
    waiting = conn.execute(_WAITING_DEPENDANTS, {"task_ids": list(task_ids)}).scalars().all()
    return settle(conn, waiting, now) if waiting else set()


def count_not_final(conn: Connection, job_id: int) -> int:
    return int(
        conn.execute(
            select(func.count()).where(tasks.c.job_id == job_id, tasks.c.state.in_(NOT_FINAL))
        ).scalar_one()
    )


def update_pool_state(
    conn: Connection, pool_id: int, counts: Mapping[InstanceState, int], now: datetime
) -> None:
    """A pool's state follows its slots' (domain.pool.derive_pool_state): how many are in
    each state."""
    pool = conn.execute(
        select(pools.c.state, pools.c.closing, pools.c.elastic, pools.c.completion_ttl_sec).where(
            pools.c.id == pool_id
        )
    ).first()
    if pool is None:
        return
    new = derive_pool_state(counts, pool.closing, pool.elastic)
    if new.value == pool.state:
        return
    final = new in FINAL_POOL_STATES
    ttl = pool.completion_ttl_sec
    conn.execute(
        update(pools)
        .where(pools.c.id == pool_id)
        .values(
            previous_state=pools.c.state,
            previous_state_transition_time=pools.c.state_transition_time,
            state=new.value,
            state_transition_time=now,
            last_modified=now,
            end_date=now if final else None,
            delete_due=now + timedelta(seconds=ttl) if final and ttl is not None else None,
        )
    )
