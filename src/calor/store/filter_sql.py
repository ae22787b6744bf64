"""Turns a domain filter tree into a SQL condition on the tasks or jobs table (indexed columns
only)."""

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, not_, or_, select, true

from calor.domain.filters import Filter, Kind, Leaf, Op
from calor.store.tables import job_tags, jobs, pool_tags, pools, task_tags, tasks

COLUMNS: dict[str, Any] = {
    "Uuid": tasks.c.uuid,
    "Name": tasks.c.name,
    "Shortname": tasks.c.shortname,
    "Profile": tasks.c.profile,
    "PoolUuid": tasks.c.pool_uuid,
    "JobUuid": tasks.c.job_uuid,
    "ProjectUuid": tasks.c.project_uuid,
    "State": tasks.c.state,
    "PreviousState": tasks.c.previous_state,
    "InstanceCount": tasks.c.instance_count,
    "RunningInstanceCount": tasks.c.running_instance_count,
    "RunningCoreCount": tasks.c.running_core_count,
    "ResultsCount": tasks.c.results_count,
    "ResultBucket": tasks.c.result_bucket,
    "ExecutionTime": tasks.c.execution_time_sec,
    "WallTime": tasks.c.wall_time_sec,
    "CreationDate": tasks.c.creation_date,
    "EndDate": tasks.c.end_date,
    "LastModified": tasks.c.last_modified,
    "StateTransitionTime": tasks.c.state_transition_time,
    "PreviousStateTransitionTime": tasks.c.previous_state_transition_time,
}

JOB_COLUMNS: dict[str, Any] = {
    "Uuid": jobs.c.uuid,
    "Name": jobs.c.name,
    "Shortname": jobs.c.shortname,
    "PoolUuid": jobs.c.pool_uuid,
    "State": jobs.c.state,
    "PreviousState": jobs.c.previous_state,
    "CreationDate": jobs.c.creation_date,
    "EndDate": jobs.c.end_date,
    "LastModified": jobs.c.last_modified,
    "StateTransitionTime": jobs.c.state_transition_time,
    "PreviousStateTransitionTime": jobs.c.previous_state_transition_time,
}


POOL_COLUMNS: dict[str, Any] = {
    "Uuid": pools.c.uuid,
    "Name": pools.c.name,
    "Shortname": pools.c.shortname,
    "Profile": pools.c.profile,
    "State": pools.c.state,
    "PreviousState": pools.c.previous_state,
    "CreationDate": pools.c.creation_date,
    "EndDate": pools.c.end_date,
    "LastModified": pools.c.last_modified,
    "StateTransitionTime": pools.c.state_transition_time,
    "PreviousStateTransitionTime": pools.c.previous_state_transition_time,
}


@dataclass(frozen=True)
class Target:
    """What a filter applies to: the filterable columns, and how a row's tags are found."""

    columns: dict[str, Any]
    tag: Any  # the tag column of the tags table
    owner: Any  # its column naming the row
    row_id: Any  # the row's id in the main table


TASKS = Target(COLUMNS, task_tags.c.tag, task_tags.c.task_id, tasks.c.id)
JOBS = Target(JOB_COLUMNS, job_tags.c.tag, job_tags.c.job_id, jobs.c.id)
POOLS = Target(POOL_COLUMNS, pool_tags.c.tag, pool_tags.c.pool_id, pools.c.id)

_LITERAL_PREFIX = re.compile(r"^\^((?:[^\\.^$*+?()[\]{}|]|\\.)*)$")


def _like_prefix(pattern: str) -> str | None:
    """``^abc`` (the CLI's name-prefix filter) becomes an indexable LIKE 'abc%'."""
    m = _LITERAL_PREFIX.match(pattern)
    if not m:
        return None
    literal = re.sub(r"\\(.)", r"\1", m.group(1))
    return literal.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _regex(column: Any, pattern: str) -> ColumnElement[bool]:
    prefix = _like_prefix(pattern)
    if prefix is not None:
        return column.like(prefix, escape="\\")  # type: ignore[no-any-return]
    return column.regexp_match(pattern)  # type: ignore[no-any-return]


def _tags_leaf(leaf: Leaf, target: Target) -> ColumnElement[bool]:
    def _has_tag(condition: ColumnElement[bool]) -> ColumnElement[bool]:
        return exists(select(target.owner).where(target.owner == target.row_id, condition))

    tag = target.tag
    values = [str(v) for v in leaf.values]
    if leaf.op is Op.EQUAL:
        return _has_tag(tag == values[0])
    if leaf.op is Op.NOT_EQUAL:
        return not_(_has_tag(tag == values[0]))
    if leaf.op is Op.IN:
        return _has_tag(tag.in_(values)) if values else false()
    if leaf.op is Op.NOT_IN:
        return not_(_has_tag(tag.in_(values))) if values else true()
    return _has_tag(_regex(tag, values[0]))


def _leaf(leaf: Leaf, target: Target) -> ColumnElement[bool]:
    if leaf.kind is Kind.TAGS:
        return _tags_leaf(leaf, target)
    column = target.columns[leaf.field]
    value = leaf.values[0] if leaf.values else None
    match leaf.op:
        case Op.EQUAL:
            return column == value  # type: ignore[no-any-return]
        case Op.NOT_EQUAL:
            return or_(column != value, column.is_(None))
        case Op.IN:
            return column.in_(list(leaf.values))  # type: ignore[no-any-return]
        case Op.NOT_IN:
            return or_(column.not_in(list(leaf.values)), column.is_(None))
        case Op.LESS_THAN:
            return column < value  # type: ignore[no-any-return]
        case Op.LESS_THAN_OR_EQUAL:
            return column <= value  # type: ignore[no-any-return]
        case Op.GREATER_THAN:
            return column > value  # type: ignore[no-any-return]
        case Op.GREATER_THAN_OR_EQUAL:
            return column >= value  # type: ignore[no-any-return]
        case Op.LIKE:
            return _regex(column, str(value))
    raise AssertionError(leaf.op)


def to_sql(node: Filter, target: Target = TASKS) -> ColumnElement[bool]:
    if isinstance(node, Leaf):
        return _leaf(node, target)
    parts = [to_sql(child, target) for child in node.children]
    if node.conjunction == "And":
        return and_(true(), *parts)
    return or_(false(), *parts)
