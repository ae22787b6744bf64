"""Pools (contract §5): slots kept warm for many short tasks. What a pool is, its state, and how
many slots its scaling policy wants at a given moment.

A slot is an instance of the pool's hidden slot task: it fetches the pool's resources, runs
the preparation task, then holds its cores, idle or running one task instance at a time.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any

from calor.domain.errors import BadRequest
from calor.domain.hardware import CORE_EPSILON
from calor.domain.states import ACTIVE_INSTANCE_STATES, PENDING_INSTANCE_STATES, InstanceState
from calor.domain.task import TaskRecord

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_SLOTS = 10_000


class PoolState(StrEnum):
    SUBMITTED = "Submitted"
    PARTIALLY_DISPATCHED = "PartiallyDispatched"
    FULLY_DISPATCHED = "FullyDispatched"
    PARTIALLY_EXECUTING = "PartiallyExecuting"
    FULLY_EXECUTING = "FullyExecuting"
    CLOSING = "Closing"
    CLOSED = "Closed"
    FAILURE = "Failure"


FINAL_POOL_STATES = frozenset({PoolState.CLOSED, PoolState.FAILURE})


class SlotState(StrEnum):
    """A slot's use, once prepared (null while it starts or prepares)."""

    IDLE = "idle"
    BUSY = "busy"
    # fetching the pool's updated resources (PATCH): tasks that wait for the pool's resources
    # synchronization do not start on it until it is idle again
    SYNCING = "syncing"


@dataclass(frozen=True)
class Period:
    """When a policy applies: always, or on some week days between two UTC times."""

    days: frozenset[int] = frozenset(range(7))
    start: time = time(0, 0)
    end: time | None = None  # None: until midnight

    def contains(self, now: datetime) -> bool:
        if now.weekday() not in self.days:
            return False
        t = now.time()
        if self.end is None or self.end <= self.start:  # to midnight, or across it
            return t >= self.start or (self.end is not None and t < self.end)
        return self.start <= t < self.end


@dataclass(frozen=True)
class Policy:
    """``Fixed`` (min = max = slots) or ``ManagedTasksQueue``: as many slots as the queue
    needs plus min_idle, within [min_slots, max_slots]; idle slots past min_idle_seconds go."""

    name: str
    kind: str
    min_slots: int
    max_slots: int
    min_idle: int = 0
    min_idle_seconds: float = 0.0
    factor: float = 1.0
    periods: tuple[Period, ...] = (Period(),)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    def active(self, now: datetime) -> bool:
        return any(p.contains(now) for p in self.periods)


@dataclass(frozen=True)
class PoolSpec:
    name: str
    shortname: str | None
    profile: str
    tags: tuple[str, ...]
    cores: float  # per slot: the node's cores shared by its slotsPerNode slots
    slots: int  # instanceCount: the fixed size, or the initial one of an elastic pool
    policies: tuple[Policy, ...]
    elastic: bool
    resize_period_sec: float
    preparation: str | None
    max_queue_sec: int | None
    completion_ttl_sec: float | None  # autoDeleteOnCompletion
    document: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SlotView:
    row_id: int
    state: InstanceState
    use: SlotState | None
    idle_since: datetime | None


@dataclass(frozen=True)
class Resize:
    add: int = 0
    release: tuple[int, ...] = ()


def _int(raw: Mapping[str, Any], key: str, where: str, default: int, low: int = 0) -> int:
    value = raw.get(key.lower(), default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_SLOTS:
        raise BadRequest(f"{where}.{key} must be a whole number from {low} to {MAX_SLOTS}")
    return value


def _number(raw: Mapping[str, Any], key: str, where: str, default: float) -> float:
    value = raw.get(key.lower(), default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise BadRequest(f"{where}.{key} must be a number >= 0")
    return float(value)


def _keyed(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise BadRequest(f"{where} must be an object")
    return {str(k).lower(): v for k, v in raw.items()}


def _clock(raw: Any, where: str) -> time:
    try:
        parts = [int(p) for p in str(raw).split(":")] + [0, 0]
        return time(parts[0], parts[1], parts[2])
    except (TypeError, ValueError):
        raise BadRequest(f"{where} must be a UTC time such as 08:30:00, not {raw!r}") from None


def _period(raw: Any, where: str) -> Period:
    body = _keyed(raw, where)
    kind = str(body.get("type") or "").lower()
    if kind == "always":
        return Period()
    if kind != "weekly":
        raise BadRequest(f"{where}.type must be Always or Weekly, not {body.get('type')!r}")
    days = body.get("days")
    if not isinstance(days, list) or not days:
        raise BadRequest(f"{where}.days must list week days such as ['monday']")
    numbers = set()
    for day in days:
        if str(day).lower() not in DAYS:
            raise BadRequest(f"{where}.days: {day!r} is not a week day")
        numbers.add(DAYS.index(str(day).lower()))
    start = _clock(body.get("starttimeutc", "00:00:00"), f"{where}.startTimeUtc")
    end_raw = body.get("endtimeutc")
    end = _clock(end_raw, f"{where}.endTimeUtc") if end_raw not in (None, "") else None
    if end == time(0, 0):
        end = None
    return Period(frozenset(numbers), start, end)


def parse_policies(raw: Any) -> tuple[Policy, ...]:
    """``scaling.policies`` (contract §5.2); a 400 names what is wrong."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise BadRequest("scaling.policies must be an array")
    out = []
    for i, item in enumerate(raw):
        where = f"scaling.policies[{i}]"
        body = _keyed(item, where)
        kind = str(body.get("type") or "").lower()
        name = str(body.get("name") or f"policy-{i}")
        periods_raw = body.get("enabledperiods")
        if periods_raw is not None and not isinstance(periods_raw, list):
            raise BadRequest(f"{where}.enabledPeriods must be an array")
        periods = tuple(
            _period(p, f"{where}.enabledPeriods[{j}]") for j, p in enumerate(periods_raw or [])
        ) or (Period(),)
        if kind == "fixed":
            slots = _int(body, "slotsCount", where, 0)
            out.append(Policy(name, "Fixed", slots, slots, periods=periods, raw=dict(item)))
        elif kind == "managedtasksqueue":
            out.append(_managed(body, where, name, "scalingFactor", periods, dict(item)))
        else:
            raise BadRequest(f"{where}.type must be Fixed or ManagedTasksQueue")
    return tuple(out)


def _managed(
    body: Mapping[str, Any],
    where: str,
    name: str,
    factor_key: str,
    periods: tuple[Period, ...] = (Period(),),
    raw: dict[str, Any] | None = None,
) -> Policy:
    low = _int(body, "minTotalSlots", where, 0)
    high = _int(body, "maxTotalSlots", where, max(low, 1))
    if high < low:
        raise BadRequest(f"{where}: maxTotalSlots ({high}) < minTotalSlots ({low})")
    factor = _number(body, factor_key, where, 1.0)
    return Policy(
        name,
        "ManagedTasksQueue",
        low,
        high,
        _int(body, "minIdleSlots", where, 0),
        _number(body, "minIdleTimeSeconds", where, 0.0),
        factor if factor > 0 else 1.0,
        periods,
        raw=raw or {},
    )


def elastic_policy(raw: Any) -> Policy | None:
    """The policy an ``elasticProperty`` with isElastic describes (None if not elastic)."""
    if raw is None:
        return None
    body = _keyed(raw, "elasticProperty")
    if not body.get("iselastic"):
        return None
    return _managed(body, "elasticProperty", "elastic", "rampResizeFactor")


def active_policy(policies: Sequence[Policy], now: datetime) -> Policy | None:
    """The first policy whose periods include now."""
    return next((p for p in policies if p.active(now)), None)


def resize(policy: Policy, slots: Sequence[SlotView], queued: int, now: datetime) -> Resize:
    """How to move toward what the policy wants: slots to add, idle slots to release.

    ``queued``: instances of the pool's tasks waiting for a slot. Slots that are starting
    count as capacity already on its way, so one burst of tasks does not add slots twice.
    """
    live = [
        s for s in slots if s.state in ACTIVE_INSTANCE_STATES or s.state in PENDING_INSTANCE_STATES
    ]
    busy = sum(1 for s in live if s.use is SlotState.BUSY)
    if policy.kind == "Fixed":
        target = policy.max_slots
    else:
        demand = busy + queued + policy.min_idle
        target = max(policy.min_slots, min(policy.max_slots, demand))
    current = len(live)
    if target > current:
        return Resize(add=max(1, math.ceil((target - current) * policy.factor)))
    if target == current:
        return Resize()
    idle_for = timedelta(seconds=policy.min_idle_seconds)
    releasable = sorted(
        (
            s
            for s in live
            if s.use is SlotState.IDLE
            and (
                policy.kind == "Fixed"
                or (s.idle_since is not None and now - s.idle_since >= idle_for)
            )
        ),
        key=lambda s: -s.row_id,  # newest first
    )
    # slots still starting go first: nothing runs on them yet
    starting = [s.row_id for s in live if s.use is None and s.state in PENDING_INSTANCE_STATES]
    excess = current - target
    chosen = (starting + [s.row_id for s in releasable])[:excess]
    return Resize(release=tuple(chosen))


def derive_pool_state(
    counts: Mapping[InstanceState, int], closing: bool, elastic: bool
) -> PoolState:
    """The pool's state from its slots' (contract §4.4)."""
    active = sum(counts.get(s, 0) for s in ACTIVE_INSTANCE_STATES)
    pending = sum(counts.get(s, 0) for s in PENDING_INSTANCE_STATES)
    remaining = active + pending
    if closing:
        return PoolState.CLOSING if active else PoolState.CLOSED
    if remaining == 0:
        # every slot failed to prepare; else it is open with no slot (yet, or any more)
        if counts.get(InstanceState.FAILURE, 0) and not elastic:
            return PoolState.FAILURE
        return PoolState.FULLY_EXECUTING
    executing = counts.get(InstanceState.EXECUTING, 0) + counts.get(InstanceState.UPLOADING, 0)
    dispatched = counts.get(InstanceState.DISPATCHED, 0)
    if executing:
        return (
            PoolState.FULLY_EXECUTING if executing == remaining else PoolState.PARTIALLY_EXECUTING
        )
    if dispatched:
        return (
            PoolState.FULLY_DISPATCHED
            if dispatched == remaining
            else PoolState.PARTIALLY_DISPATCHED
        )
    return PoolState.SUBMITTED


@dataclass(frozen=True)
class PoolRecord:
    id: int
    uuid: str
    name: str
    shortname: str
    profile: str
    state: PoolState
    previous_state: PoolState
    creation_date: datetime
    state_transition_time: datetime
    previous_state_transition_time: datetime
    last_modified: datetime
    end_date: datetime | None
    cores: float
    elastic: bool
    closing: bool
    active_policy: str | None
    document: dict[str, Any]
    tags: list[str] = field(default_factory=list)
    # the hidden slot task, with its instances (the slots) when loaded in full
    slots: TaskRecord | None = None
    # instances of the pool's tasks queued or running on it
    task_instances: int = 0
    busy_slots: int = 0
    # what the pool cannot get now, said in its errors (never a silent wait)
    notes: list[str] = field(default_factory=list)
    # what its slots were billed (store/usage.py): cores held * time * price
    credits: float = 0.0


@dataclass(frozen=True)
class Capacity:
    """The executor's cores: all of them, and those free now."""

    total: int
    free: float


def _cores_text(cores: float) -> str:
    return f"{cores:.2f}".rstrip("0").rstrip(".")


def min_slots(spec: PoolSpec) -> int:
    """The slots the pool holds at once whatever happens: an elastic pool grows as far as
    cores allow, so only its minimum counts."""
    return min((p.min_slots for p in spec.policies), default=0) if spec.elastic else spec.slots


def check_fits(spec: PoolSpec, total_cores: int) -> None:
    """Refuse the pool whose slots could never all hold their cores at once on this
    executor: it would wait forever short of FullyExecuting. An elastic pool grows as far as
    cores allow, so only its minimum must fit."""
    floor = min_slots(spec)
    need = floor * spec.cores
    if need <= total_cores + CORE_EPSILON:
        return
    per_node = int(spec.document.get("multiSlotsSettings", {}).get("slotsPerNode") or 1)
    node_cores = spec.cores * per_node
    nodes = int((total_cores + CORE_EPSILON) // node_cores) if node_cores else 0
    raise BadRequest(
        f"this pool needs {_cores_text(need)} cores at once ({floor} slots of "
        f"{_cores_text(spec.cores)} core) and this server has {total_cores}: ask for at most "
        f"{nodes} nodes of {_cores_text(node_cores)} cores, or split a node into more slots "
        f"with multiSlotsSettings.slotsPerNode (its slots share its cores)"
    )


def waiting_note(pool: PoolRecord, capacity: Capacity) -> str | None:
    """Why some of the pool's slots have not started, if they have not."""
    if pool.closing or pool.slots is None:
        return None
    waiting = sum(1 for i in pool.slots.instances if i.state is InstanceState.QUEUED)
    if not waiting:
        return None
    live = sum(
        1
        for i in pool.slots.instances
        if i.state in ACTIVE_INSTANCE_STATES or i.state in PENDING_INSTANCE_STATES
    )
    return (
        f"{waiting} of the pool's {live} slots wait for free cores: each needs "
        f"{_cores_text(pool.cores)}, and {_cores_text(max(capacity.free, 0.0))} of this "
        f"server's {capacity.total} cores are free now (other tasks and pools hold the rest); "
        f"they start as cores free up"
    )
