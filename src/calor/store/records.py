"""Rows to domain records, and the recomputation of a task's derived fields."""

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select, update

from calor.domain.dependencies import Dependency, DependencyState
from calor.domain.states import (
    FINAL_TASK_STATES,
    InstanceState,
    TaskState,
)
from calor.domain.task import InstanceRecord, InstanceTotals, TaskRecord, derive_from
from calor.store.keys import tags_by_owner
from calor.store.settle import after_end, update_pool_state
from calor.store.tables import COUNT_COLUMNS, instances, task_tags, tasks

INSTANCE_COLUMNS = (
    instances.c.id,
    instances.c.task_id,
    instances.c.instance_id,
    instances.c.state,
    instances.c.attempts,
    instances.c.progress,
    instances.c.started_at,
    instances.c.ended_at,
    instances.c.wall_time_sec,
    instances.c.cpu_time_sec,
    instances.c.peak_memory_mb,
    instances.c.exit_code,
    instances.c.error,
    instances.c.transfer_progress,
    instances.c.results,
)

# Built once: constructing a Core statement (and its cache key) per call cost the engine about
# a third of its time per task (bench/RESULTS.md, target 1)
_LOAD_INSTANCES = (
    select(*INSTANCE_COLUMNS)
    .where(instances.c.task_id.in_(bindparam("task_ids", expanding=True)))
    .order_by(instances.c.task_id, instances.c.instance_id)
)
_TOTALS_COLUMNS = (
    *(tasks.c[name] for name in COUNT_COLUMNS.values()),
    tasks.c.progress_sum,
    tasks.c.wall_sum,
    tasks.c.first_start,
    tasks.c.last_end,
    tasks.c.running_started,
    tasks.c.started_ms_sum,
)
_DERIVE_INPUTS = select(
    tasks.c.id,
    tasks.c.state,
    tasks.c.state_transition_time,
    tasks.c.cancel_requested,
    tasks.c.cores,
    tasks.c.job_id,
    tasks.c.completion_ttl_sec,
    tasks.c.slots_of,
    *_TOTALS_COLUMNS,
).where(tasks.c.id.in_(bindparam("task_ids", expanding=True)))
# executemany: the SET clause is taken from the parameters' keys
_UPDATE_TASK = update(tasks).where(tasks.c.id == bindparam("_task_id"))


_STATES = {s.value: s for s in InstanceState}


def instance_record(row: Any) -> InstanceRecord:
    """A row of INSTANCE_COLUMNS; unpacked by position, as a task's full JSON builds one per
    instance (10^5 in a big task) and a lookup by name costs several times more. Between the
    state and the results the columns are InstanceRecord's fields, in its order."""
    row_id, _task_id, instance_id, state, *between, results = row
    return InstanceRecord._make(
        (row_id, instance_id, _STATES[state], *between, tuple(results) if results else ())
    )


def task_record(
    row: Row[Any],
    tags: list[str] | None = None,
    insts: list[InstanceRecord] | None = None,
    deps: list[tuple[Dependency, TaskState | None, bool]] | None = None,
) -> TaskRecord:
    return TaskRecord(
        id=row.id,
        uuid=row.uuid,
        name=row.name,
        shortname=row.shortname,
        profile=row.profile,
        pool_uuid=row.pool_uuid,
        job_uuid=row.job_uuid,
        project_uuid=row.project_uuid,
        result_bucket=row.result_bucket,
        state=TaskState(row.state),
        previous_state=TaskState(row.previous_state),
        creation_date=row.creation_date,
        state_transition_time=row.state_transition_time,
        previous_state_transition_time=row.previous_state_transition_time,
        last_modified=row.last_modified,
        end_date=row.end_date,
        instance_count=row.instance_count,
        advanced_ranges=row.advanced_ranges,
        cores=row.cores,
        progress=row.progress,
        running_instance_count=row.running_instance_count,
        running_core_count=row.running_core_count,
        execution_time_sec=row.execution_time_sec,
        wall_time_sec=row.wall_time_sec,
        results_count=row.results_count,
        errors=list(row.errors or []),
        document=dict(row.document or {}),
        tags=tags or [],
        instances=insts or [],
        snapshot_interval=row.snapshot_interval,
        dependency_state=DependencyState(row.dependency_state) if row.dependency_state else None,
        dependencies=deps or [],
    )


def totals_row(row: Any) -> InstanceTotals:
    """A task row's instance totals (selected with _TOTALS_COLUMNS)."""
    counts = {s: n for s, name in COUNT_COLUMNS.items() if (n := int(getattr(row, name)))}
    return InstanceTotals(
        counts,
        float(row.progress_sum),
        float(row.wall_sum),
        row.first_start,
        row.last_end,
        int(row.running_started),
        int(row.started_ms_sum),
    )


def load_instances(conn: Connection, task_ids: Sequence[int]) -> dict[int, list[InstanceRecord]]:
    out: dict[int, list[InstanceRecord]] = {i: [] for i in task_ids}
    if not task_ids:
        return out
    for row in conn.execute(_LOAD_INSTANCES, {"task_ids": list(task_ids)}):
        out[row.task_id].append(instance_record(row))
    return out


def load_tags(conn: Connection, task_ids: Sequence[int]) -> dict[int, list[str]]:
    return tags_by_owner(conn, task_tags.c.task_id, task_tags.c.tag, task_ids)


def recompute(conn: Connection, task_ids: Iterable[int], now: datetime) -> None:
    """Re-derive state, progress, counts and times of these tasks from their instances.

    Called in the same transaction as the instance change, so a task's stored state is
    never behind its instances once the change is committed. Tasks that end release or
    cancel the tasks waiting on them, which are re-derived in turn.
    """
    pending = set(task_ids)
    while pending:
        pending = after_end(conn, _recompute_once(conn, pending, now), now)


def _recompute_once(
    conn: Connection, task_ids: Iterable[int], now: datetime
) -> dict[int, int | None]:
    """The derivation itself; returns the tasks that just ended, with their job ids."""
    ended: dict[int, int | None] = {}
    ids = sorted(set(task_ids))
    if not ids:
        return ended
    rows = conn.execute(_DERIVE_INPUTS, {"task_ids": ids}).all()
    # one executemany per shape of SET clause: with or without a state change
    updates: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for row in rows:
        totals = totals_row(row)
        d = derive_from(totals, row.cores, row.cancel_requested, now)
        if row.slots_of is not None:  # a pool's slots are the instances of its slot task
            update_pool_state(conn, row.slots_of, totals.counts, now)
        values: dict[str, Any] = {
            "_task_id": row.id,
            "progress": d.progress,
            "running_instance_count": d.running_instance_count,
            "running_core_count": d.running_core_count,
            "execution_time_sec": d.execution_time_sec,
            "wall_time_sec": d.wall_time_sec,
            "last_modified": now,
        }
        changed = d.state != row.state
        if changed:
            final = d.state in FINAL_TASK_STATES
            ttl = row.completion_ttl_sec
            values.update(
                state=d.state.value,
                previous_state=row.state,
                previous_state_transition_time=row.state_transition_time,
                state_transition_time=now,
                end_date=now if final else None,
                delete_due=now + timedelta(seconds=ttl) if final and ttl is not None else None,
            )
            if final:
                ended[row.id] = row.job_id
        updates[changed].append(values)
    for params in updates.values():
        if params:
            conn.execute(_UPDATE_TASK, params)
    return ended
