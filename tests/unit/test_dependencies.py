"""The pure dependency rules: parsing the create body's block and deciding a task's fate."""

import re

import pytest

from calor.domain.dependencies import (
    DependencyState,
    evaluate,
    make_dependency,
    parse_dependencies,
    to_wire,
)
from calor.domain.errors import BadRequest
from calor.domain.states import TaskState

S, F, C = TaskState.SUCCESS, TaskState.FAILURE, TaskState.CANCELLED


def test_depends_on_wants_success_and_advanced_takes_its_conditions() -> None:
    deps = parse_dependencies(
        {
            "DependsOn": ["a"],
            "advancedDependsOn": [
                {"taskUuid": "b", "taskFinalStateCondition": ["Failure", "cancelled"]},
                {"TaskUuid": "c", "taskFinalStateCondition": None},
                {"taskUuid": "d", "taskFinalStateCondition": []},
            ],
        }
    )
    assert [d.task_uuid for d in deps] == ["a", "b", "c", "d"]
    assert deps[0].accepted == {S} and not deps[0].advanced
    assert deps[1].accepted == {F, C} and deps[1].conditions == ("failure", "cancelled")
    # no condition on an advanced dependency accepts any final state (the SDK's doc)
    assert deps[2].accepted == deps[3].accepted == {S, F, C}
    assert parse_dependencies(None) == () == parse_dependencies({"dependsOn": []})


@pytest.mark.parametrize(
    ("raw", "word"),
    [
        ("x", "object"),
        ({"dependsOn": "a"}, "dependsOn"),
        ({"dependsOn": [1]}, "dependsOn[0]"),
        ({"dependsOn": ["a", "a"]}, "twice"),
        ({"advancedDependsOn": {}}, "advancedDependsOn"),
        ({"advancedDependsOn": ["a"]}, "advancedDependsOn[0]"),
        ({"advancedDependsOn": [{"taskUuid": "a", "taskFinalStateCondition": ["done"]}]}, "done"),
        ({"advancedDependsOn": [{"taskUuid": "a", "taskFinalStateCondition": "success"}]}, "array"),
        ({"dependsOn": ["x"] * 1001}, "at most"),
    ],
)
def test_bad_blocks_say_what_is_wrong(raw: object, word: str) -> None:
    with pytest.raises(BadRequest, match=re.escape(word)):
        parse_dependencies(raw)


def test_evaluate() -> None:
    ok = make_dependency("a", None, False)
    on_failure = make_dependency("b", ["failure"], True)
    assert evaluate([]).state is DependencyState.FULFILLED
    assert evaluate([(ok, TaskState.FULLY_EXECUTING, True)]).state is DependencyState.WAITING
    assert evaluate([(ok, S, True), (on_failure, F, True)]).state is DependencyState.FULFILLED
    # one lost cause settles it at once, even while another is still running
    verdict = evaluate([(ok, None, True), (on_failure, S, True)])
    assert verdict.state is DependencyState.NOT_FULFILLED
    assert verdict.reason is not None and "b" in verdict.reason and "Success" in verdict.reason
    gone = evaluate([(ok, None, False)])
    assert gone.state is DependencyState.NOT_FULFILLED and "deleted" in (gone.reason or "")


def test_wire_shape() -> None:
    ok = make_dependency("a", None, False)
    adv = make_dependency("b", ["success"], True)
    wire = to_wire([(ok, S, True), (adv, TaskState.SUBMITTED, True)], DependencyState.WAITING)
    assert wire == {
        "dependsOn": ["a"],
        "advancedDependsOn": [
            {
                "taskUuid": "b",
                "taskFinalStateCondition": ["success"],
                "state": "waiting",
                "actualFinalState": None,
            }
        ],
        "state": "waiting",
    }
