"""The filter tree of contract §11.1, parsed into a small validated AST.

The store turns the AST into SQL; nothing here knows about databases. Keys and operator names
are read case-insensitively (old SDKs send PascalCase, the Python SDK camelCase).
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any

from calor.domain.errors import BadRequest

MAX_DEPTH = 16
MAX_LEAVES = 256
MAX_VALUES = 1000


class Kind(Enum):
    TEXT = "text"
    INT = "int"
    FLOAT = "float"
    DATE = "date"
    TAGS = "tags"


class Op(StrEnum):
    EQUAL = "Equal"
    NOT_EQUAL = "NotEqual"
    IN = "In"
    NOT_IN = "NotIn"
    LESS_THAN = "LessThan"
    LESS_THAN_OR_EQUAL = "LessThanOrEqual"
    GREATER_THAN = "GreaterThan"
    GREATER_THAN_OR_EQUAL = "GreaterThanOrEqual"
    LIKE = "Like"


ORDERING_OPS = frozenset(
    {Op.LESS_THAN, Op.LESS_THAN_OR_EQUAL, Op.GREATER_THAN, Op.GREATER_THAN_OR_EQUAL}
)

# Filterable task fields (PascalCase as on the wire) and how their values are read.
TASK_FIELDS: dict[str, Kind] = {
    "Uuid": Kind.TEXT,
    "Name": Kind.TEXT,
    "Shortname": Kind.TEXT,
    "Profile": Kind.TEXT,
    "PoolUuid": Kind.TEXT,
    "JobUuid": Kind.TEXT,
    "ProjectUuid": Kind.TEXT,
    "State": Kind.TEXT,
    "PreviousState": Kind.TEXT,
    "Tags": Kind.TAGS,
    "InstanceCount": Kind.INT,
    "RunningInstanceCount": Kind.INT,
    "RunningCoreCount": Kind.INT,
    "ResultsCount": Kind.INT,
    "ResultBucket": Kind.TEXT,
    "ExecutionTime": Kind.FLOAT,
    "WallTime": Kind.FLOAT,
    "CreationDate": Kind.DATE,
    "EndDate": Kind.DATE,
    "LastModified": Kind.DATE,
    "StateTransitionTime": Kind.DATE,
    "PreviousStateTransitionTime": Kind.DATE,
}

# Filterable job fields
JOB_FIELDS: dict[str, Kind] = {
    "Uuid": Kind.TEXT,
    "Name": Kind.TEXT,
    "Shortname": Kind.TEXT,
    "PoolUuid": Kind.TEXT,
    "State": Kind.TEXT,
    "PreviousState": Kind.TEXT,
    "Tags": Kind.TAGS,
    "CreationDate": Kind.DATE,
    "EndDate": Kind.DATE,
    "LastModified": Kind.DATE,
    "StateTransitionTime": Kind.DATE,
    "PreviousStateTransitionTime": Kind.DATE,
}

# Filterable pool fields
POOL_FIELDS: dict[str, Kind] = {**JOB_FIELDS, "Profile": Kind.TEXT}
del POOL_FIELDS["PoolUuid"]

FilterValue = str | int | float | datetime


@dataclass(frozen=True)
class Leaf:
    field: str
    kind: Kind
    op: Op
    values: tuple[FilterValue, ...]


@dataclass(frozen=True)
class Node:
    conjunction: str  # "And" or "Or"
    children: tuple["Filter", ...]


Filter = Leaf | Node


def _lower_keys(obj: dict[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in obj.items()}


def _parse_date(raw: Any) -> datetime:
    if not isinstance(raw, str):
        raise BadRequest(f"filter date value {raw!r} must be an ISO 8601 string")
    text = raw.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python accepts at most 6 fractional digits; .NET writes 7
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"filter date value {raw!r} is not an ISO 8601 date") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(tzinfo=None)


def _parse_value(field: str, kind: Kind, op: Op, raw: Any) -> FilterValue:
    if op is Op.LIKE:
        if not isinstance(raw, str):
            raise BadRequest(f"Like on {field} needs a string regex such as '/^prefix/'")
        pattern = raw[1:-1] if len(raw) >= 2 and raw.startswith("/") and raw.endswith("/") else raw
        try:
            re.compile(pattern)
        except re.error as exc:
            raise BadRequest(f"Like on {field}: {raw!r} is not a valid regex ({exc})") from None
        return pattern
    if kind is Kind.DATE:
        return _parse_date(raw)
    if kind in (Kind.INT, Kind.FLOAT):
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise BadRequest(f"filter value {raw!r} for {field} must be a number")
        try:
            number = int(raw) if kind is Kind.INT else float(raw)
        except ValueError:
            raise BadRequest(f"filter value {raw!r} for {field} must be a number") from None
        if kind is Kind.INT and not -(2**31) <= number < 2**31:
            raise BadRequest(f"filter value {raw!r} for {field} is out of range")
        return number
    if raw is None:
        return ""
    if isinstance(raw, (dict, list)):
        raise BadRequest(f"filter value for {field} must be a string, got {type(raw).__name__}")
    return str(raw)


def _parse_leaf(obj: dict[str, Any], fields: dict[str, Kind]) -> Leaf:
    by_lower = {name.lower(): name for name in fields}
    raw_field = obj.get("field")
    if not isinstance(raw_field, str) or raw_field.lower() not in by_lower:
        known = ", ".join(sorted(fields))
        raise BadRequest(f"filter field {raw_field!r} is not filterable; use one of: {known}")
    field = by_lower[raw_field.lower()]
    kind = fields[field]
    op = _parse_op(obj.get("operator"))
    if op in (Op.IN, Op.NOT_IN):
        raw_values = obj.get("values", obj.get("value"))
        if not isinstance(raw_values, list):
            raw_values = [raw_values]
        if len(raw_values) > MAX_VALUES:
            raise BadRequest(f"{op} on {field} has more than {MAX_VALUES} values")
        values = tuple(_parse_value(field, kind, op, v) for v in raw_values)
    else:
        if "value" not in obj and "values" in obj and isinstance(obj["values"], list):
            raw = obj["values"][0] if obj["values"] else None
        else:
            raw = obj.get("value")
        values = (_parse_value(field, kind, op, raw),)
    if op in ORDERING_OPS and kind in (Kind.TAGS,):
        raise BadRequest(f"{op} cannot be used on {field}; use Equal, NotEqual, In or NotIn")
    if op is Op.LIKE and kind is not Kind.TEXT and kind is not Kind.TAGS:
        raise BadRequest(f"Like can only be used on text fields, not {field}")
    return Leaf(field=field, kind=kind, op=op, values=values)


def _parse_op(raw: Any) -> Op:
    if isinstance(raw, str):
        for op in Op:
            if op.value.lower() == raw.lower():
                return op
    names = ", ".join(op.value for op in Op)
    raise BadRequest(f"filter operator {raw!r} is unknown; use And, Or or one of: {names}")


def parse_filter(raw: Any, fields: dict[str, Kind] = TASK_FIELDS) -> Filter | None:
    """Parse and validate a filter tree; ``None`` (no filter) stays ``None``."""
    if raw is None:
        return None
    leaves = [0]

    def walk(node: Any, depth: int) -> Filter:
        if depth > MAX_DEPTH:
            raise BadRequest(f"filter is nested deeper than {MAX_DEPTH} levels")
        if not isinstance(node, dict):
            raise BadRequest(
                "each filter must be an object with 'operator' and 'filters' or 'field'"
            )
        obj = _lower_keys(node)
        operator = obj.get("operator")
        if isinstance(operator, str) and operator.lower() in ("and", "or"):
            children = obj.get("filters")
            if not isinstance(children, list):
                raise BadRequest(f"filter node {operator!r} needs a 'filters' array")
            parsed = tuple(walk(child, depth + 1) for child in children)
            return Node(conjunction="And" if operator.lower() == "and" else "Or", children=parsed)
        leaves[0] += 1
        if leaves[0] > MAX_LEAVES:
            raise BadRequest(f"filter has more than {MAX_LEAVES} conditions")
        return _parse_leaf(obj, fields)

    return walk(raw, 0)


def tags_any(values: list[str]) -> Filter | None:
    """The ``?tag=t1&tag=t2,t3`` query (contract §11.3): comma lists, union, OR semantics."""
    tags: list[str] = []
    for value in values:
        for tag in value.split(","):
            tag = tag.strip()
            if "\x00" in tag:
                raise BadRequest(f"tag {tag!r} contains a NUL character; remove it")
            if tag and tag not in tags:
                tags.append(tag)
    if not tags:
        return None
    return Leaf(field="Tags", kind=Kind.TAGS, op=Op.IN, values=tuple(tags))
