"""Task dependencies inside a job (contract §3.1, §3.2): what a task waits for, and whether it
may run, must keep waiting, or can never run.

Dependencies name tasks that exist when the task is submitted, in the same job, and never
change afterwards: a task can only wait on older tasks, so no cycle can form.

``dependsOn`` asks for every listed task to succeed. ``advancedDependsOn`` names, per task, the
final states it accepts; none (null or []) accepts any final state, as the SDK documents.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from calor.domain.errors import BadRequest
from calor.domain.states import FINAL_TASK_STATES, TaskState

MAX_DEPENDENCIES = 1000

# the wire names of final states in dependency conditions (the SDK's TaskFinalState values)
FINAL_STATE_NAMES: Mapping[str, TaskState] = {
    "success": TaskState.SUCCESS,
    "failure": TaskState.FAILURE,
    "cancelled": TaskState.CANCELLED,
}


class DependencyState(StrEnum):
    WAITING = "waiting"
    FULFILLED = "dependencyConditionsFulfilled"
    NOT_FULFILLED = "dependencyConditionsNotFulfilled"


@dataclass(frozen=True)
class Dependency:
    task_uuid: str
    # the final states that satisfy it
    accepted: frozenset[TaskState]
    # listed in advancedDependsOn (it is echoed back there, with its conditions)
    advanced: bool = False
    # the conditions as the client gave them (None: any final state)
    conditions: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Verdict:
    state: DependencyState
    # why it can never be fulfilled (NOT_FULFILLED only)
    reason: str | None = None


def make_dependency(task_uuid: str, conditions: Sequence[str] | None, advanced: bool) -> Dependency:
    """``conditions``: lower-case final state names; none accepts any final state when the
    dependency is advanced, and success only when it comes from dependsOn."""
    if conditions:
        accepted = frozenset(FINAL_STATE_NAMES[c] for c in conditions)
    else:
        accepted = FINAL_TASK_STATES if advanced else frozenset({TaskState.SUCCESS})
    return Dependency(task_uuid, accepted, advanced, tuple(conditions) if conditions else None)


def _keyed(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in raw.items()}


def _uuid(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 64:
        raise BadRequest(f"{where} must be a task uuid, not {value!r}")
    return value


def parse_dependencies(raw: Any) -> tuple[Dependency, ...]:
    """The ``dependencies`` object of a create body; a 400 names what is wrong."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise BadRequest('dependencies must be an object such as {"dependsOn": [uuid, ...]}')
    body = _keyed(raw)
    simple = body.get("dependson")
    advanced = body.get("advanceddependson")
    simple = [] if simple is None else simple
    advanced = [] if advanced is None else advanced
    if not isinstance(simple, list):
        raise BadRequest("dependencies.dependsOn must be an array of task uuids")
    if not isinstance(advanced, list):
        raise BadRequest("dependencies.advancedDependsOn must be an array")
    out: list[Dependency] = [
        make_dependency(_uuid(v, f"dependencies.dependsOn[{i}]"), None, False)
        for i, v in enumerate(simple)
    ]
    for i, item in enumerate(advanced):
        where = f"dependencies.advancedDependsOn[{i}]"
        if not isinstance(item, Mapping):
            raise BadRequest(f"{where} must be an object with taskUuid")
        entry = _keyed(item)
        task_uuid = _uuid(entry.get("taskuuid"), f"{where}.taskUuid")
        names = entry.get("taskfinalstatecondition")
        if names is not None and not isinstance(names, list):
            raise BadRequest(f"{where}.taskFinalStateCondition must be an array or null")
        conditions: list[str] = []
        for name in names or []:
            key = str(name).lower()
            if key not in FINAL_STATE_NAMES:
                known = ", ".join(FINAL_STATE_NAMES)
                raise BadRequest(f"{where}: final state {name!r} is not one of {known}")
            conditions.append(key)
        out.append(make_dependency(task_uuid, list(dict.fromkeys(conditions)), True))
    if len(out) > MAX_DEPENDENCIES:
        raise BadRequest(f"a task may depend on at most {MAX_DEPENDENCIES} tasks")
    seen: set[str] = set()
    for dep in out:
        if dep.task_uuid in seen:
            raise BadRequest(f"dependencies list task {dep.task_uuid} twice")
        seen.add(dep.task_uuid)
    return tuple(out)


def entry_state(dep: Dependency, actual: TaskState | None, exists: bool) -> DependencyState:
    """One dependency: met, still open, or failed for good."""
    if not exists:
        return DependencyState.NOT_FULFILLED
    if actual is None or actual not in FINAL_TASK_STATES:
        return DependencyState.WAITING
    if actual in dep.accepted:
        return DependencyState.FULFILLED
    return DependencyState.NOT_FULFILLED


def evaluate(deps: Sequence[tuple[Dependency, TaskState | None, bool]]) -> Verdict:
    """All of a task's dependencies, each with its task's state and whether it still exists.

    One that can never hold settles it at once, so a task never waits on a lost cause.
    """
    waiting = False
    for dep, actual, exists in deps:
        state = entry_state(dep, actual, exists)
        if state is DependencyState.NOT_FULFILLED:
            if not exists:
                reason = f"the task it depends on, {dep.task_uuid}, was deleted before it ended"
            else:
                wanted = " or ".join(sorted(s.value for s in dep.accepted))
                reason = (
                    f"the task it depends on, {dep.task_uuid}, ended in "
                    f"{actual.value if actual else '?'}; this task needed {wanted}"
                )
            return Verdict(DependencyState.NOT_FULFILLED, reason)
        waiting = waiting or state is DependencyState.WAITING
    return Verdict(DependencyState.WAITING if waiting else DependencyState.FULFILLED)


def to_wire(
    deps: Sequence[tuple[Dependency, TaskState | None, bool]], state: DependencyState | None
) -> dict[str, Any]:
    """The ``dependencies`` object of a full task (contract §3.2)."""
    advanced = []
    for dep, actual, exists in deps:
        if not dep.advanced:
            continue
        final = actual if actual in FINAL_TASK_STATES else None
        advanced.append(
            {
                "taskUuid": dep.task_uuid,
                "taskFinalStateCondition": list(dep.conditions) if dep.conditions else None,
                "state": entry_state(dep, actual, exists).value,
                "actualFinalState": final.value.lower() if final else None,
            }
        )
    return {
        "dependsOn": [dep.task_uuid for dep, _, _ in deps if not dep.advanced],
        "advancedDependsOn": advanced,
        "state": state.value if state else None,
    }
